"""`make run`: start localstripe, the web server, a Celery worker and beat; stop them all on Ctrl-C.

Written by hand rather than with honcho or a Procfile runner because the start has an order
(localstripe must be up, with the app's webhook registered, before the web server takes
payments) and because those runners stop everything when any one process exits, while here a
crashed part should be named and then everything stopped cleanly.

Each part runs in its own process group, so stopping one stops its children too and nothing is
left behind as an orphan.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
HOST = "127.0.0.1"
WEB_PORT = int(os.environ.get("FORETASTE_PORT", "8000"))
STRIPE_PORT = int(os.environ.get("FORETASTE_STRIPE_PORT", "8420"))
DEMO_LOGINS = (
    ("marketer", "marketer@demo.test"),
    ("executive", "executive@demo.test"),
    ("customer", "customer@demo.test"),
    ("operator (/admin/)", "operator@demo.test"),
)
COLOURS = {"stripe": "35", "web": "32", "worker": "36", "beat": "33"}


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"make run: {url} never came up; its process exited with {process.returncode}.")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"make run: {url} did not answer within {timeout:.0f}s.")


class Supervisor:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, and we stop it
            text=True,
            bufsize=1,
        )
        self.processes[name] = process
        threading.Thread(target=self._relay, args=(name, process), daemon=True).start()
        return process

    def _relay(self, name: str, process: subprocess.Popen) -> None:
        prefix = f"\033[{COLOURS.get(name, '0')}m{name:>6}\033[0m | " if sys.stdout.isatty() else f"{name:>6} | "
        for line in process.stdout:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        # SIGTERM to each leader only: the Celery worker then finishes its task and stops its
        # own pool (a warm shutdown). What is left in a group afterwards is killed below.
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait()
        # Children the parts forked (the worker's pool, the autoreloader) share their groups.
        for process in self.processes.values():
            self._signal(process, signal.SIGKILL)

    @staticmethod
    def _signal(process: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    def watch(self) -> int:
        while not self.stopping:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(f"make run: {name} exited with {process.returncode}; stopping everything.", flush=True)
                    return 1
            time.sleep(0.5)
        return 0


def main() -> int:
    for port, what in ((WEB_PORT, "the web server"), (STRIPE_PORT, "localstripe")):
        if port_in_use(port):
            print(
                f"make run: port {port} ({what}) is already in use. Stop what uses it, or set "
                f"{'FORETASTE_PORT' if port == WEB_PORT else 'FORETASTE_STRIPE_PORT'}.",
                file=sys.stderr,
            )
            return 2

    stripe_base = f"http://{HOST}:{STRIPE_PORT}"
    env = {
        **os.environ,
        "FORETASTE_ENV": os.environ.get("FORETASTE_ENV", "development"),
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_JS_URL": f"{stripe_base}/js.stripe.com/v3/",
        "SITE_URL": f"http://{HOST}:{WEB_PORT}",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    supervisor = Supervisor(env)

    def on_signal(signum, frame):
        # A second Ctrl-C while everything is stopping would cut the stop short: ignored.
        if not supervisor.stopping:
            raise KeyboardInterrupt

    # Explicit, because a shell that starts us in the background may have ignored SIGINT.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        stripe = supervisor.start(
            "stripe",
            [
                PYTHON,
                "scripts/localstripe_server.py",
                "--host",
                HOST,
                "--port",
                str(STRIPE_PORT),
                "--webhook-url",
                f"http://{HOST}:{WEB_PORT}/stripe/webhook/",
                "--webhook-secret",
                settings.STRIPE_WEBHOOK_SECRET,
                "--store",
                str(settings.VAR_DIR / "localstripe.pickle"),
            ],
        )
        wait_for(f"{stripe_base}/js.stripe.com/v3/", stripe)
        # Demo offers are launched, and launching sets up prices at Stripe: so after localstripe.
        for step in (["migrate", "--noinput"], ["seed_demo"]):
            subprocess.run([PYTHON, "manage.py", *step], cwd=ROOT, env=env, check=True)
        web = supervisor.start("web", [PYTHON, "manage.py", "runserver", f"{HOST}:{WEB_PORT}"])
        supervisor.start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        supervisor.start(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel=INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILE,
            ],
        )
        wait_for(f"http://{HOST}:{WEB_PORT}/", web)
        logins = "\n".join(f"    {role:<19} {email}" for role, email in DEMO_LOGINS)
        debug = (
            "Debug pages: on (DEBUG=1)"
            if settings.DEBUG
            else "Debug pages: off, so you see what users see (make run DEBUG=1 turns them on)"
        )
        print(
            f"\n  Foretaste is running at http://{HOST}:{WEB_PORT}/\n"
            f"  Demo logins (password: foretaste-demo):\n{logins}\n"
            f"  Email goes to files in {settings.EMAIL_FILE_PATH}\n"
            f"  Offline Stripe (localstripe): {stripe_base}\n"
            f"  {debug}\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        code = supervisor.watch()
    except KeyboardInterrupt:
        print("\nmake run: stopping …", flush=True)
    except subprocess.CalledProcessError as exc:
        print(f"make run: `{' '.join(exc.cmd[1:])}` failed (exit {exc.returncode}); see above.", flush=True)
        code = 1
    finally:
        supervisor.stop()
        print("make run: everything stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
