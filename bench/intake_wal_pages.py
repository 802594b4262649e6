"""WAL pages an intake's commit writes on SQLite, by b-tree (table or index).

    .venv/bin/python bench/intake_wal_pages.py [MEASURED=40] [EARLIER=200]

EARLIER API inquiries (every agency: 8 deliveries) first, so the tables have the size
a busy hour gives them, then the WAL checkpointed away and MEASURED more with
autocheckpoint off; every WAL frame is one page written under SQLite's write lock,
attributed to its b-tree through the dbstat table. Run from the checkout whose code
it measures (bench/RESULTS.md, "intake ... branch h-intake3").
"""
import collections, sqlite3, struct, sys, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from gateway import migrate
from gateway.app import create_app
from gateway.auth.keys import init_keys
from gateway.auth.tokens import issue_token
from gateway.settings import load_settings
from support import CASE_NUMBER, COURT, DEBTOR, OFFICER, gateway_overrides, register_case

N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
BODY = {"case_number": CASE_NUMBER, "action": "inquiry", "subject": DEBTOR}
tmp = Path(tempfile.mkdtemp())
db = tmp / "gateway.db"
ov = gateway_overrides(tmp, f"sqlite:///{db}")
ov["limits"] = {"officer_requests_per_hour": 10**9, "court_requests_per_hour": 10**9, "officer_subjects_per_day": 10**9}
ov["reuse"] = {"freshness_seconds": 86400}
settings = load_settings(ov); init_keys(settings); migrate.upgrade(settings.database_url)
app = create_app(ov); register_case(app)
client = app.test_client()
h = {"Authorization": "Bearer " + issue_token(settings, role=OFFICER.role, sub=OFFICER.sub, court=COURT)}
def submit(tag, n):
    for i in range(n):
        r = client.post("/api/v1/requests", json=BODY, headers={**h, "Idempotency-Key": f"{tag}-{i:06d}"})
        assert r.status_code == 202, r.get_data()
submit("warm", int(sys.argv[2]) if len(sys.argv) > 2 else 200)
c = sqlite3.connect(db)
c.execute("pragma wal_checkpoint(TRUNCATE)").fetchall()
app.extensions["db"].engine.dispose()
c.execute("pragma wal_autocheckpoint=0")
# keep a reader open? engine connections do autocheckpoint at 1000 pages; set high on them
from sqlalchemy import event
@event.listens_for(app.extensions["db"].engine, "connect")
def _nock(dbapi, _r):
    dbapi.execute("pragma wal_autocheckpoint=0")
submit("m", N)
wal = (db.parent / "gateway.db-wal").read_bytes()
psize = struct.unpack(">I", wal[8:12])[0]
frames = (len(wal) - 32) // (24 + psize)
pages = [struct.unpack(">I", wal[32 + i*(24+psize): 36 + i*(24+psize)])[0] for i in range(frames)]
owner = {}
try:
    for name, pageno in c.execute("select name, pageno from dbstat"):
        owner[pageno] = name
except sqlite3.OperationalError as e:
    print("no dbstat", e)
by = collections.Counter(owner.get(p, f"?{p}") for p in pages)
print(f"page size {psize}, {frames} frames for {N} requests: {frames/N:.1f} per request")
for name, n in by.most_common():
    print(f"  {n/N:5.2f}  {name}")
