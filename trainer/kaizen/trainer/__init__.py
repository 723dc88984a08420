"""The trainer step: assemble a domain's training set, train one LoRA adapter, merge adapters.

`python -m kaizen.trainer train …` and `python -m kaizen.trainer merge …` are the programs
inside the train-`<domain>` and merge Jobs (see docs/design.md §3); `data`, `lora` and
`merge` hold the work and can be used without the command line.
"""
