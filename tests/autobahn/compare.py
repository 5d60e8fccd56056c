#!/usr/bin/env python3
"""Check an Autobahn|Testsuite fuzzingclient result against committed expectations.

Usage (normally called by tests/autobahn/run.sh):

  compare.py --index OUTDIR/index.json --expected EXPECTED.json
             [--agent NAME] [--cases PAT ...] [--exclude PAT ...]
             [--announced N] [--results OUTDIR/results.txt] [--write-expected]

EXPECTED.json is a JSON object keyed by case id:

  {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}, ...}

An entry may carry an extra "note" string explaining an accepted outcome; it is kept
when the file is rewritten and the outcome did not change. A non-passing entry also carries
"closeCode", the close code the server sent: an accepted failure must keep failing for the
same reason (e.g. 1009 for a message over the configured limit), so a case that starts
failing differently is reported even though its behavior strings are unchanged.

Only the expected entries selected by --cases/--exclude (same pattern rules as wstest)
are compared, so a subset run can be checked against the full file. With
--write-expected the selected part of the file is replaced by this run's results
(other entries are kept).

Exit status: 0 all as expected; 1 any difference, incomplete run or refusal to write;
2 usage or input error.

Standard library only.
"""

import argparse
import collections
import json
import os
import re
import sys
import tempfile

GOOD_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
GOOD_BEHAVIOR_CLOSE = {"OK", "INFORMATIONAL"}


def natural_key(case_id):
    """'9.10.2' sorts after '9.2.1'; non-numeric parts sort after numeric ones."""
    key = []
    for part in re.split(r"[.]", case_id):
        key.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return tuple(key)


def pattern_matches(pattern, case_id):
    """wstest's rule (caseset.resolveCasePatternList): with '*' a regex prefix match where
    '.' is literal and '*' is '.*'; without '*' an exact case id."""
    if "*" in pattern:
        rx = re.escape(pattern).replace(r"\*", ".*")
        return re.match(rx, case_id) is not None
    return pattern == case_id


def selected(case_id, cases, exclude):
    if cases and not any(pattern_matches(p, case_id) for p in cases):
        return False
    return not any(pattern_matches(p, case_id) for p in exclude)


def is_bad(outcome):
    behavior, behavior_close = outcome
    return behavior not in GOOD_BEHAVIOR or behavior_close not in GOOD_BEHAVIOR_CLOSE


def fmt(outcome):
    return "%s/%s" % outcome


def fail(msg):
    print("compare.py: error: %s" % msg, file=sys.stderr)
    sys.exit(2)


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        fail("cannot read %s %s: %s" % (what, path, e))
    except ValueError as e:
        fail("%s %s is not valid JSON: %s" % (what, path, e))


def load_index(path, agent):
    index = load_json(path, "wstest index")
    if not isinstance(index, dict):
        fail("%s: expected a JSON object keyed by agent" % path)
    if agent is None:
        if len(index) > 1:
            fail("%s holds several agents (%s); pass --agent" % (path, ", ".join(sorted(index))))
        agent = next(iter(index), "(none)")
    if agent not in index:
        # wstest writes {} when it could not connect at all (and still exits 0).
        print("WARNING: no results for agent %r in %s (agents: %s)"
              % (agent, path, ", ".join(sorted(index)) or "none"))
        return agent, {}
    results, codes = {}, {}
    for case_id, r in index[agent].items():
        results[case_id] = (str(r.get("behavior")), str(r.get("behaviorClose")))
        codes[case_id] = r.get("remoteCloseCode")
    return agent, results, codes


def load_expected(path):
    data = load_json(path, "expected-results file")
    if not isinstance(data, dict):
        fail("%s: expected a JSON object keyed by case id" % path)
    expected, notes, codes = {}, {}, {}
    for case_id, v in data.items():
        if not isinstance(v, dict) or not isinstance(v.get("behavior"), str) \
                or not isinstance(v.get("behaviorClose"), str):
            fail('%s: entry %r must look like {"behavior": "OK", "behaviorClose": "OK"}'
                 % (path, case_id))
        expected[case_id] = (v["behavior"], v["behaviorClose"])
        if isinstance(v.get("note"), str):
            notes[case_id] = v["note"]
        if "closeCode" in v:
            codes[case_id] = v["closeCode"]
    return expected, notes, codes


def dump_expected(path, expected, notes, codes):
    """One case per line, natural order: small, reviewable diffs."""
    lines = []
    for case_id in sorted(expected, key=natural_key):
        entry = collections.OrderedDict(
            [("behavior", expected[case_id][0]), ("behaviorClose", expected[case_id][1])])
        if is_bad(expected[case_id]) and case_id in codes:
            entry["closeCode"] = codes[case_id]
        if case_id in notes:
            entry["note"] = notes[case_id]
        lines.append("  %s: %s" % (json.dumps(case_id), json.dumps(entry)))
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".expected-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def print_totals(results):
    by_behavior = collections.Counter(b for b, _ in results.values())
    by_close = collections.Counter(c for _, c in results.values())
    print("Totals over %d cases:" % len(results))
    print("  behavior:      " + ", ".join("%s %d" % kv for kv in sorted(by_behavior.items())))
    print("  behaviorClose: " + ", ".join("%s %d" % kv for kv in sorted(by_close.items())))


def banner(lines):
    width = max(len(l) for l in lines) + 4
    print("!" * width)
    for l in lines:
        print("!! " + l)
    print("!" * width)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True, help="wstest OUTDIR/index.json")
    ap.add_argument("--expected", required=True, help="expected-results JSON file")
    ap.add_argument("--agent", help="agent name in index.json (default: the only one)")
    ap.add_argument("--cases", nargs="*", default=[], help="case patterns that were run")
    ap.add_argument("--exclude", nargs="*", default=[], help="case patterns excluded")
    ap.add_argument("--announced", type=int,
                    help='case count from "Ok, will run N test cases"')
    ap.add_argument("--results", help="write 'case behavior behaviorClose' lines here")
    ap.add_argument("--write-expected", action="store_true",
                    help="update EXPECTED from this run instead of comparing")
    args = ap.parse_args()

    agent, results, got_codes = load_index(args.index, args.agent)
    order = sorted(results, key=natural_key)

    if args.results:
        with open(args.results, "w", encoding="utf-8") as f:
            for case_id in order:
                f.write("%s %s %s\n" % ((case_id,) + results[case_id]))

    status = 0
    print("Agent %s: %d cases in %s" % (agent, len(results), args.index))
    print_totals(results)

    if args.announced is not None and args.announced != len(results):
        banner(["INCOMPLETE RUN: wstest announced %d cases but index.json holds %d."
                % (args.announced, len(results)),
                "The server probably died or stopped answering mid-run",
                "(wstest still exits 0 in that case)."])
        status = 1

    bad = [c for c in order if is_bad(results[c])]

    if args.write_expected:
        if status:
            print("Refusing to write %s from an incomplete run." % args.expected)
            return 1
        expected, notes, codes = {}, {}, {}
        if os.path.exists(args.expected):
            expected, notes, codes = load_expected(args.expected)
        kept = {c: o for c, o in expected.items() if not selected(c, args.cases, args.exclude)}
        new_notes = {c: n for c, n in notes.items()
                     if c in kept or (c in results and expected.get(c) == results[c])}
        changed = sorted((c for c in results if expected.get(c) != results[c]), key=natural_key)
        dropped = sorted((c for c in expected
                          if c not in kept and c not in results), key=natural_key)
        new_codes = {c: codes[c] for c in kept if c in codes}
        new_codes.update(got_codes)
        for c in results:
            if c in notes and codes.get(c) != got_codes.get(c):
                new_notes.pop(c, None)
        kept.update(results)
        dump_expected(args.expected, kept, new_notes, new_codes)
        added = [c for c in changed if c not in expected]
        print("Wrote %s: %d cases from this run (%d new, %d changed), %d other entries kept,"
              " %d dropped." % (args.expected, len(results), len(added),
                                len(changed) - len(added), len(kept) - len(results),
                                len(dropped)))
        for c in changed:
            if c in expected:
                print("  changed  %-10s %s -> %s" % (c, fmt(expected[c]), fmt(results[c])))
        for c in dropped:
            print("  dropped  %-10s %s" % (c, fmt(expected[c])))
        if bad:
            banner(["WARNING: %d case(s) recorded as expected with a non-passing outcome"
                    % len(bad),
                    "(behavior not OK/NON-STRICT/INFORMATIONAL or behaviorClose not"
                    " OK/INFORMATIONAL):"]
                   + ["  %-10s %s" % (c, fmt(results[c])) for c in bad]
                   + ["Explain each one (a \"note\" in the expected file) before committing."])
        return status

    expected, notes, codes = load_expected(args.expected)
    want = {c: o for c, o in expected.items() if selected(c, args.cases, args.exclude)}
    diffs = []
    for case_id in sorted(set(want) | set(results), key=natural_key):
        got, exp = results.get(case_id), want.get(case_id)
        if got == exp:
            if case_id in codes and got_codes.get(case_id) != codes[case_id]:
                diffs.append("  %-10s expected %-28s got %s but close code %s, not %s"
                             "   <-- NOT PASSING"
                             % (case_id, fmt(exp), fmt(got), got_codes.get(case_id),
                                codes[case_id]))
            continue
        if got is None:
            diffs.append("  %-10s expected %-28s got (not run / missing from index.json)"
                         % (case_id, fmt(exp)))
        elif exp is None:
            diffs.append("  %-10s expected %-28s got %s" % (case_id, "(not in expected file)",
                                                           fmt(got)))
        else:
            diffs.append("  %-10s expected %-28s got %s" % (case_id, fmt(exp), fmt(got)))
        if got is not None and is_bad(got):
            diffs[-1] += "   <-- NOT PASSING"

    if diffs:
        print()
        print("%d case(s) differ from %s:" % (len(diffs), args.expected))
        print("\n".join(diffs))
        status = 1
    else:
        print("All %d selected cases match %s." % (len(want), args.expected))

    def accepted(c):
        return want.get(c) == results[c] and codes.get(c, got_codes.get(c)) == got_codes.get(c)
    new_bad = [c for c in bad if not accepted(c)]
    accepted_bad = [c for c in bad if accepted(c)]
    if new_bad:
        print()
        banner(["FAILURE: %d case(s) with a non-passing outcome that the expected file does"
                " not accept:" % len(new_bad)]
               + ["  %-10s %s" % (c, fmt(results[c])) for c in new_bad])
    if accepted_bad:
        print()
        banner(["WARNING: %d case(s) do not pass but are accepted by %s:"
                % (len(accepted_bad), os.path.basename(args.expected))]
               + ["  %-10s %s%s" % (c, fmt(results[c]),
                                    ("   (" + notes[c] + ")") if c in notes else "")
                  for c in accepted_bad])
    return status


if __name__ == "__main__":
    sys.exit(main())
