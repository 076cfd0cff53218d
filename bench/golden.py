#!/usr/bin/env python3
"""Golden outputs for refactors: record every shipped scenario's CPU outputs, compare later.

    golden.py record DIR [--bin target/release/dicke]   run scenarios/*.toml into DIR/<stem>/
    golden.py compare REF NEW                           compare two recorded trees

What `compare` checks (a refactor must not change results):
- every CSV file of REF exists in NEW with the same header (columns appended after REF's are
  reported, not compared: a new capability may add columns) and row count; every entry agrees to
  1e-12 relative (floor: 1e-12 of the column's largest magnitude, so a value that is zero up to
  rounding does not demand relative agreement with zero). Trajectory runs (result.json task =
  "trajectories") must be bit-identical: same seed, same Philox streams, same arithmetic.
- result.json: the "results", "columns" and "model" entries agree (numbers to the same
  tolerance, everything else exactly); every file REF lists exists in NEW.
- PNG files: byte-identical is reported; a difference is reported and fails only with --strict-png
  (plots are deterministic, but a figure issue may change them on purpose).
Timings, versions, backend notes and solver statistics are not compared.
"""
import csv
import json
import math
import os
import subprocess
import sys
import time

REL = 1e-12
NOTES = []  # changes that are reported, not failed: columns appended after the compared ones


def record(out, binary):
    os.makedirs(out, exist_ok=True)
    scen = sorted(f for f in os.listdir("scenarios") if f.endswith(".toml"))
    for f in scen:
        stem = f[:-5]
        d = os.path.join(out, stem)
        t0 = time.time()
        r = subprocess.run([binary, "run", os.path.join("scenarios", f), "--out", d,
                            "--backend", "cpu"], capture_output=True, text=True)
        print(f"{stem}: exit {r.returncode} in {time.time() - t0:.1f} s", flush=True)
        if r.returncode != 0:
            print(r.stderr)
            sys.exit(1)


def read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def close(a, b, scale, exact):
    if exact:
        return a == b or (math.isnan(a) and math.isnan(b))
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= REL * max(abs(a), abs(b), scale)


def cmp_csv(ref, new, exact, errs):
    h1, r1 = read_csv(ref)
    h2, r2 = read_csv(new)
    if h2[:len(h1)] != h1:
        errs.append(f"{new}: header differs")
        return
    if len(h2) > len(h1):
        NOTES.append(f"{new}: new columns {h2[len(h1):]} (not compared)")
    if len(r1) != len(r2):
        errs.append(f"{new}: {len(r2)} rows, reference {len(r1)}")
        return
    scale = [0.0] * len(h1)
    for row in r1:
        for k, s in enumerate(row):
            v = num(s)
            if v is not None and math.isfinite(v):
                scale[k] = max(scale[k], abs(v))
    bad = 0
    for i, (a, b) in enumerate(zip(r1, r2)):
        for k, (x, y) in enumerate(zip(a, b)):
            vx, vy = num(x), num(y)
            ok = (x == y) if vx is None or vy is None else close(vx, vy, scale[k], exact)
            if not ok:
                if bad < 3:
                    errs.append(f"{new}: row {i} column {h1[k]}: {x} vs {y}")
                bad += 1
    if bad > 3:
        errs.append(f"{new}: ... {bad} entries differ")


def cmp_json(a, b, path, exact, errs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k not in b:
                errs.append(f"{path}.{k}: missing")
            else:
                cmp_json(a[k], b[k], f"{path}.{k}", exact, errs)
    elif isinstance(a, list) and isinstance(b, list):
        if path.endswith(":columns") and len(b) > len(a) and b[:len(a)] == a:
            NOTES.append(f"{path}: new columns {b[len(a):]}")
            b = b[:len(a)]
        if len(a) != len(b):
            errs.append(f"{path}: length {len(b)} vs {len(a)}")
        for i, (x, y) in enumerate(zip(a, b)):
            cmp_json(x, y, f"{path}[{i}]", exact, errs)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not close(float(a), float(b), 0.0, exact):
            errs.append(f"{path}: {a} vs {b}")
    elif a != b:
        errs.append(f"{path}: {a!r} vs {b!r}")


def compare(ref, new, strict_png):
    errs, notes = [], []
    for stem in sorted(os.listdir(ref)):
        d1, d2 = os.path.join(ref, stem), os.path.join(new, stem)
        if not os.path.isdir(d2):
            errs.append(f"{stem}: missing in {new}")
            continue
        j1 = json.load(open(os.path.join(d1, "result.json")))
        j2 = json.load(open(os.path.join(d2, "result.json")))
        exact = j1.get("task") == "trajectories"
        for key in ("results", "columns", "model"):
            if key in j1:
                cmp_json(j1[key], j2.get(key), f"{stem}/result.json:{key}", exact, errs)
        for f in sorted(os.listdir(d1)):
            p1, p2 = os.path.join(d1, f), os.path.join(d2, f)
            if not os.path.exists(p2):
                errs.append(f"{stem}/{f}: missing")
            elif f.endswith(".csv"):
                cmp_csv(p1, p2, exact, errs)
            elif f.endswith(".png"):
                if open(p1, "rb").read() != open(p2, "rb").read():
                    (errs if strict_png else notes).append(f"{stem}/{f}: image differs")
        print(f"{stem}: compared ({'bit-identical' if exact else f'rel {REL}'})")
    for n in NOTES + notes:
        print("note:", n)
    for e in errs:
        print("DIFF:", e)
    print("golden: OK" if not errs else f"golden: {len(errs)} differences")
    return 0 if not errs else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "record":
        binary = a[a.index("--bin") + 1] if "--bin" in a else "target/release/dicke"
        record(a[1], binary)
    elif len(a) >= 3 and a[0] == "compare":
        sys.exit(compare(a[1], a[2], "--strict-png" in a))
    else:
        print(__doc__)
        sys.exit(2)
