"""Checks the end-to-end output of scenarios/pumping_steady_state.toml against the exact
thermal steady state rho = exp(-beta Jz)/Z, beta = -ln(w/Gamma) (PHYSICS.md sec. 6)."""
import csv, json, math, os, sys

out = sys.argv[1]
for f in ("observables.csv", "result.json", "plot.png", "pm.csv"):
    p = os.path.join(out, f)
    assert os.path.getsize(p) > 0, f"{p} missing or empty"
with open(os.path.join(out, "plot.png"), "rb") as fh:
    assert fh.read(8) == b"\x89PNG\r\n\x1a\n", "plot.png is not a PNG"
rows = list(csv.DictReader(open(os.path.join(out, "observables.csv"))))
hdr = list(rows[0].keys())
assert hdr[:7] == ["r", "w", "Jx", "Jy", "Jz", "xi2", "J2"], hdr
assert "var_Jz" in hdr, hdr
assert len(rows) == 81, len(rows)
N = 100
ms = [m - N / 2 for m in range(N + 1)]
worst = 0.0
for row in rows:
    r = float(row["r"])
    beta = -math.log(r)
    wts = [math.exp(-beta * m - max(-beta * x for x in ms)) for m in ms]
    Z = sum(wts)
    jz = sum(w * m for w, m in zip(wts, ms)) / Z
    var = sum(w * m * m for w, m in zip(wts, ms)) / Z - jz * jz
    worst = max(worst, abs(float(row["Jz"]) - jz), abs(float(row["var_Jz"]) - var) / var)
assert worst < 1e-8, f"thermal steady state mismatch {worst}"
res = json.load(open(os.path.join(out, "result.json")))
assert res["backend"]["name"] == "cpu", res["backend"]
assert res["task"] == "scan" and res["scenario"]["model"]["N"] == 100
print(f"end-to-end check OK: 81 points, max deviation from exp(-beta Jz)/Z = {worst:.2e}")
