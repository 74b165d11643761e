"""Run one command; print its wall time and peak RSS: `python -I -S spawn.py STDOUT_FILE ARGV...`.

Why a separate small process: on Linux a child's `ru_maxrss` starts at the peak RSS of the
process it was forked from (exec keeps the old memory's high-water mark), so measuring from the
benchmark process, which holds whole payloads, would credit every child with that. This one
stays at ~8 MiB, below any Python process measured. Standard library only, nothing imported
beyond `os`, `sys` and `time`. Exits with the command's exit status.
"""

import os
import sys
import time


def main(stdout_file: str, argv: list[str]) -> int:
    redirect = [(os.POSIX_SPAWN_OPEN, 1, stdout_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=redirect)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    print(f"{seconds} {usage.ru_maxrss * 1024}", flush=True)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
