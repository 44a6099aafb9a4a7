"""The fixture shared by the PITR e2e files: a repository the postgres user
can archive into (archive_command = tapwork pg archive-push), its server, and
servers started on restored data directories, all stopped by close()."""
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
sys.path.insert(0, os.path.dirname(HERE))
from bkhelp import PASSWORD, tw  # noqa: E402
from conftest import BIN, free_port  # noqa: E402
import pgutil  # noqa: E402


class ArchiveSite:
    """checksums: the server's cluster is made with `initdb -k` in
    tmp/pgdata (known before the server starts, as self.data and self.port:
    a subclass's setup() may write files that name them); env: the server's
    environment."""

    def __init__(self, checksums=False, env=None):
        self.tmp = pgutil.make_tmp()
        self.repo = os.path.join(self.tmp, "repo")
        self.pwfile = os.path.join(self.tmp, "password")
        with open(self.pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        tw(self.repo, "repo", "init", check=0)
        self.port = free_port()
        self.data = os.path.join(self.tmp, "pgdata") if checksums else None
        self.setup()
        if checksums:
            pgutil.initdb(self.data, "-k")
        pgutil.chown_postgres(self.tmp)
        self.conf = ["archive_mode=on", f"archive_command={self.archive_command()}",
                     "wal_level=replica"]
        self.pg = pgutil.Postgres(self.port, conf=self.conf, datadir=self.data, env=env)
        self.data = self.pg.dir
        self.restored = []

    def setup(self):
        """Files the server's archive_command reads (none by default)."""

    def archive_command(self):
        return f"{BIN} pg archive-push -q -r {self.repo} --password-file {self.pwfile} %p"

    def tw(self, *args, **kw):
        return tw(self.repo, *args, **kw)

    def log_tail(self):
        self.pg.log.flush()
        with open(os.path.join(self.pg.tmp, "postgres.log"), errors="replace") as f:
            return f.read()[-3000:]

    def switch(self):
        """pg check: switch WAL and wait until that segment is archived."""
        self.tw("pg", "check", "--pg-data", self.pg.dir, "--postgres", self.pg.url("postgres"),
                check=0, timeout=120)

    def start(self, datadir, tmp):
        """A server on a restored data directory (tmp removed by close())."""
        p = pgutil.Postgres(free_port(), conf=self.conf, datadir=datadir)
        p.restore_tmp = tmp
        self.restored.append(p)
        return p

    def restore(self, *args, start=True):
        """Restore into a fresh directory; start a server there unless not
        start (then the directory is returned)."""
        tmp = pgutil.make_tmp()
        target = os.path.join(tmp, "pgdata")
        self.tw("restore", "--pg-data", target, "--pg-password-file", self.pwfile, *args,
                check=0, timeout=300)
        return self.start(target, tmp) if start else target

    def close(self):
        for p in self.restored:
            p.stop()
            shutil.rmtree(p.restore_tmp, ignore_errors=True)
        self.pg.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def module_site(cls=ArchiveSite, **kw):
    """The `site` fixture of a test module: site = module_site(Site)."""
    @pytest.fixture(scope="module")
    def site():
        if pgutil.missing() is not None:
            pytest.skip(pgutil.missing())
        s = cls(**kw)
        yield s
        s.close()
    return site
