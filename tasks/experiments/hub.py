"""Push an export folder to the Hugging Face Hub as a dataset repo, through huggingface_hub.

What goes up is what a Hub dataset needs: the card (README.md, whose `configs` name the
`train` split) and data.parquet. The JSONL copy, the save_to_disk folder and manifest.json (it
holds local paths) stay local. Failures are one line that names the Hub endpoint and the
repo, never the token (huggingface_hub reads it from HF_TOKEN or its login file)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tasks.errors import InputError
from tasks.experiments.card import CARD_FILE, DATA_FILE

PUSHED_FILES = [CARD_FILE, DATA_FILE]


class HubError(RuntimeError):
    """The Hub could not take the export (unreachable, or it refused); one-line message."""


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if the Hub would accept it as a repo name; InputError in one line if not."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InputError(f"--push-to-hub {repo_id!r}: not a Hub repo id (name or "
                         "namespace/name: letters, digits, '-', '_', '.')") from None
    return repo_id


def _endpoint(url: str) -> str:
    # An endpoint URL may carry credentials (https://user:secret@host): never print them.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def push_export(folder: str | Path, repo_id: str, *, private: bool | None = None) -> str:
    """Create the dataset repo if needed and upload the card and data.parquet of `folder`;
    returns the repo's URL. HubError when the Hub is not reachable or refuses."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    check_repo_id(repo_id)
    folder = Path(folder)
    missing = [f for f in PUSHED_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{folder}: not an export folder (no {', '.join(missing)})")
    api = HfApi()
    where = _endpoint(api.endpoint)
    not_pushed = f"{folder} was not pushed"
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          allow_patterns=PUSHED_FILES,
                          commit_message="Distillery export: card and data.parquet")
    except OfflineModeIsEnabled:
        raise HubError(f"the Hugging Face Hub ({where}) is not reachable: offline mode is on "
                       f"(HF_HUB_OFFLINE=1); {not_pushed}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "no status"
        hint = (" (log in with `hf auth login` or set HF_TOKEN)" if status in (401, 403)
                else "")
        raise HubError(f"the Hugging Face Hub ({where}) refused {repo_id}: HTTP {status}"
                       f"{hint}; {not_pushed}") from None
    except (httpx2.TransportError, ConnectionError, TimeoutError) as exc:
        raise HubError(f"the Hugging Face Hub ({where}) is not reachable "
                       f"({type(exc).__name__}); {not_pushed}") from None
    return str(url)
