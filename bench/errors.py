"""Bad user input (ConfigError: the CLI prints it as one line and exits 2), and a run left
unfinished (RunInterrupted: one line saying how to resume; exit 130 after Ctrl-C)."""


class ConfigError(ValueError):
    """Bad input from the user. The message names every problem found."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(dict.fromkeys(problems))
        super().__init__("; ".join(self.problems))


def raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)


class RunInterrupted(Exception):
    """A run that stopped before every search used its budget (Ctrl-C, or `by_signal` False:
    Ray Tune ended early). Its run directory is left resumable."""

    def __init__(self, run_dir, cut_short: int, by_signal: bool):
        self.run_dir, self.cut_short, self.by_signal = run_dir, cut_short, by_signal
        why = "interrupted" if by_signal else "stopped before every search used its budget"
        super().__init__(f"{why}; trials that ended are kept in {run_dir}, {cut_short} cut "
                         f"short will train again; continue with: ohobench run --resume "
                         f"{run_dir}")
