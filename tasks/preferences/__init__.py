"""Beyond plain SFT data, from the samples a warehouse already keeps (right and wrong, with
their execution verdicts): distinct-solution sets, outcome and step-level preference pairs,
verifier labels. Pure functions over batches (`pairs`, `signature`) and the stages that run
them (`stages`); the flow is flows/preferences.py."""
