"""Bad user input (ConfigError: the CLI prints it as one line and exits 2), and a run left
unfinished (RunInterrupted: one line saying how to resume)."""


class ConfigError(ValueError):
    """Bad input from the user. The message names every problem found."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(dict.fromkeys(problems))
        super().__init__("; ".join(self.problems))


def raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)


class RunInterrupted(Exception):
    """A run left unfinished, resumable: `why` it stopped (Ctrl-C: exit code 130; Ray Tune
    ending early, a full disk: 1)."""

    def __init__(self, run_dir, why: str, exit_code: int = 1):
        self.run_dir, self.exit_code = run_dir, exit_code
        super().__init__(f"{why}; the trials that ended are kept in {run_dir}; continue with: "
                         f"ohobench run --resume {run_dir}")


class SearchesErrored(Exception):
    """The run finished, but some searches raised and ended early (a plugin's fault): one line
    each, 'experiment: error'. Exit code 1."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("; ".join(lines))
