"""`distillery docs`: where the Great Expectations Data Docs of a warehouse are, opened in a
browser on request. Registers on the shared typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail


@app.command()
def docs(
    open_browser: Annotated[bool, typer.Option("--open", help="open the site in the default "
                                               "browser")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="render every stored validation "
                                          "and suite again (after editing a suite's JSON)")
                       ] = False,
    warehouse: Warehouse = None,
) -> None:
    """Print the path of the Data Docs site (docs/ beside the warehouse file): every
    validation of every refresh, with the suites and the rows that failed them."""
    from quality.context import docs_dir_for, gx_lock, quality_context
    from warehouse import resolve_path

    docs_dir = docs_dir_for(resolve_path(warehouse))
    if rebuild:
        with gx_lock:
            quality_context(docs_dir).build_data_docs()
    index = docs_dir / "index.html"
    if not index.is_file():
        fail(f"no Data Docs at {docs_dir}: a refresh writes them when it validates a batch")
    typer.echo(str(index))
    if open_browser:
        import webbrowser

        if not webbrowser.open(index.as_uri()):
            typer.echo("no browser found; open the path above")
