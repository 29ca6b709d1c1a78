"""Times item creation at the end of one group as a board grows: ms per creation for each block
of 1000 items, over REST, one at a time, on a fresh SQLite server it starts and stops.

    python3 loadtest/grow_board.py ./target/release/boardroom 10000

A flat line is the goal: creating an item must not cost more on a big board (loadtest/README.md,
"History of changes that moved it")."""
import urllib.error, json, os, subprocess, sys, tempfile, time, urllib.request, socket

binary, total = sys.argv[1], int(sys.argv[2])
port = (lambda s: (s.bind(("127.0.0.1", 0)), s.getsockname()[1], s.close())[1])(socket.socket())
data = tempfile.mkdtemp()
env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDROOM_")}
env.update({"BOARDROOM_LISTEN": f"127.0.0.1:{port}", "BOARDROOM_DATA_DIR": data,
            "BOARDROOM_REGISTER_LIMIT": "10000", "BOARDROOM_LOG": "warn",
            "BOARDROOM_PLAN_FREE": "boards=unlimited,api_keys=unlimited"})
server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(data + "/log", "w"))
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token: req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read()[:300]}")
for _ in range(100):
    try: urllib.request.urlopen(base + "/readyz"); break
    except Exception: time.sleep(0.2)
try:
    reg = call("POST", "/api/v1/auth/register", {"email": "bench@example.com", "password": "bench-password-123", "name": "Bench"})
    token = reg.get("access_token") or reg["tokens"]["access_token"]
    org = call("POST", "/api/v1/orgs", {"name": "bench"}, token)["id"]
    board = call("POST", f"/api/v1/orgs/{org}/boards", {"name": "grow"}, token)
    board_id = board["id"]
    group = call("POST", f"/api/v1/boards/{board_id}/groups", {"title": "g"}, token)["id"]
    started = time.perf_counter()
    for n in range(total):
        call("POST", f"/api/v1/boards/{board_id}/items", {"group_id": group, "name": f"i{n}"}, token)
        if (n + 1) % 1000 == 0:
            now = time.perf_counter()
            print(f"{n+1} items: {(now - started):.3f} ms per creation over the last 1000", flush=True)
            started = now
finally:
    server.terminate(); server.wait()
