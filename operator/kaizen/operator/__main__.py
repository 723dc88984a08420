"""`python -m kaizen.operator [kopf run options]`: run the operator under kopf.

Without `-n/--namespace` or `-A/--all-namespaces` it watches `$KAIZEN_NAMESPACES`, or all
namespaces when that is empty.
"""

from __future__ import annotations

import sys

from kaizen.operator.settings import OperatorSettings


def kopf_args(argv: list[str], settings: OperatorSettings) -> list[str]:
    """The `kopf run` command line for these extra arguments and settings."""
    args = ["run", "-m", "kaizen.operator", *argv]
    scoped = any(a in ("-A", "--all-namespaces", "-n") or a.startswith("--namespace") for a in argv)
    if not scoped:
        if settings.namespaces:
            for namespace in settings.namespaces:
                args += ["--namespace", namespace]
        else:
            args.append("--all-namespaces")
    return args


def main(argv: list[str] | None = None) -> None:
    from kopf import cli

    cli.main(
        args=kopf_args(list(sys.argv[1:] if argv is None else argv), OperatorSettings.from_env())
    )


if __name__ == "__main__":
    main()
