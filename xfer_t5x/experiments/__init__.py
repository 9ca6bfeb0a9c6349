"""The study's pipeline: experiments in gin (`experiment`), their phases run in-process
(`phases`), the grid runner with its state (`grid`, `state`), provenance, and the `grid`,
`results` and `demo` commands."""
