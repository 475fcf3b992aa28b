#!/usr/bin/env python3
"""Times `ember validate` on repetitive inputs of 16 and 64 KiB and flags superlinear growth.

Usage: fuzz/scaling-probe.py [path/to/ember]   (default: the release build)

For each shape the 64 KiB input is four times the 16 KiB one, so linear code takes about four
times as long; a ratio well above that (and a 64 KiB time above 0.2 s) is reported as SLOW.
Each run is killed after 60 s.
"""
import base64, gzip, json, os, subprocess, sys, tempfile, time

V = '{"ignition":{"version":"3.6.0"},'


def files(objs):
    return V + '"storage":{"files":[' + ','.join(objs) + ']}}'


def nested_references(n):
    """30 merges of gzip-compressed configs with 30 merges each, as deep as n bytes allow."""
    cur = json.dumps({"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "rel"}]}})
    while True:
        url = base64.b64encode(gzip.compress(cur.encode(), 9, mtime=0)).decode()
        nxt = json.dumps({"ignition": {"version": "3.6.0", "config": {"merge": [
            {"source": "data:;p=%d;base64,%s" % (i, url), "compression": "gzip"} for i in range(30)]}}})
        if len(nxt) > n:
            return cur
        cur = nxt


def dup_links_below(n):
    k = n // 26
    return V + '"storage":{"links":[' + ','.join(['{"path":"/l"}'] * k) + '],"files":[' + ','.join(['{"path":"/l/a"}'] * k) + ']}}'

SHAPES = {
 'nested-references': nested_references,
 'dup-links-below': dup_links_below,
 # one path with many slashes
 'deep-path': lambda n: files(['{"path":"' + '/a' * (n // 2) + '"}']),
 # many files on one line, each an error with a secret (inline data)
 'oneline-errors-secrets': lambda n: files(['{"path":"r%d","contents":{"source":"data:,s"}}' % i for i in range(n // 40)]),
 # many files, each on its own line
 'lines-errors': lambda n: files(['\n{"path":"r%d","contents":{"source":"data:,s"}}' % i for i in range(n // 40)]),
 # many duplicate keys in one object
 'dup-keys': lambda n: V + '"storage":{' + ','.join(['"files":[]'] * (n // 11)) + '}}',
 # many distinct unknown keys in one object
 'unknown-keys': lambda n: V + '"storage":{' + ','.join('"k%d":1' % i for i in range(n // 8)) + '}}',
 # many case-folded keys
 'case-keys': lambda n: V + '"storage":{' + ','.join(['"FILES":[]'] * (n // 11)) + '}}',
 # many duplicate files
 'dup-files': lambda n: files(['{"path":"/x"}'] * (n // 13)),
 # many files below a file
 'below-file': lambda n: files(['{"path":"/x"}'] + ['{"path":"/x/%d"}' % i for i in range(n // 16)]),
 # long unit contents, one line per option
 'unit-lines': lambda n: V + '"systemd":{"units":[{"name":"a.service","contents":' + json.dumps("[A]\n" + "B=c\n" * (n // 4)) + '}]}}',
 # long unit continuation lines
 'unit-cont': lambda n: V + '"systemd":{"units":[{"name":"a.service","contents":' + json.dumps("[A]\nB=" + "c\\\n" * (n // 3)) + '}]}}',
 # long data url
 'dataurl': lambda n: files(['{"path":"/x","contents":{"source":"data:,' + 'a%20' * (n // 4) + '"}}']),
 'dataurl-b64': lambda n: files(['{"path":"/x","contents":{"source":"data:;base64,' + 'QUFB' * (n // 4) + '"}}']),
 'url-long': lambda n: files(['{"path":"/x","contents":{"source":"https://h/' + 'a/' * (n // 2) + '?' + 'a=b&' * (n // 8) + '"}}']),
 # many merge children as data urls
 'merges': lambda n: V[:-1] + ',"config":{"merge":[' + ','.join(['{"source":"data:,%7B%22ignition%22%3A%7B%22version%22%3A%223.6.0%22%7D%7D"}'] * (n // 80)) + ']}}}',
 'deep-arrays': lambda n: V + '"x":' + '[' * min(n // 2, 9999) + ']' * min(n // 2, 9999) + '}',
 'deep-unknown-obj': lambda n: V + '"x":' + '{"a":' * (n // 6) + '1' + '}' * (n // 6) + '}',
 'many-partitions': lambda n: V + '"storage":{"disks":[{"device":"/dev/vda","partitions":[' + ','.join('{"number":%d,"startMiB":%d,"sizeMiB":1}' % (i + 1, i) for i in range(n // 40)) + ']}]}}',
 'many-users-groups': lambda n: V + '"passwd":{"users":[' + ','.join('{"name":"u%d","groups":["g%d"],"sshAuthorizedKeys":["k"]}' % (i, i) for i in range(n // 50)) + ']}}',
 'karg': lambda n: V + '"kernelArguments":{"shouldExist":[' + ','.join('"a%d"' % i for i in range(n // 8)) + '],"shouldNotExist":[' + ','.join('"a%d"' % i for i in range(n // 16)) + ']}}',
 'links-hard': lambda n: V + '"storage":{"directories":[' + ','.join('{"path":"/d%d"}' % i for i in range(n // 40)) + '],"links":[' + ','.join('{"path":"/l%d","target":"/d%d","hard":true}' % (i, i) for i in range(n // 40)) + ']}}',
 'long-line-one-error-end': lambda n: files(['{"path":"/x%d"}' % i for i in range(n // 16)] + ['{"path":"rel"}']),
 'strings-escapes': lambda n: files(['{"path":"/' + '\\u00e9' * (n // 6) + '"}']),
 'invalid-utf8': lambda n: files(['{"path":"/' + '\udcff' * (n // 1) + '"}']),
}


def run(ember, path, fmt):
    start = time.monotonic()
    try:
        subprocess.run([ember, "validate", "--format", fmt, path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return 60.0
    return time.monotonic() - start


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ember = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "target/x86_64-unknown-linux-gnu/release/ember")
    slow = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in SHAPES.items():
            paths = []
            for n in (16384, 65536):
                p = os.path.join(tmp, "%s-%d" % (name, n))
                with open(p, "wb") as f:
                    f.write(make(n).encode("utf-8", "surrogateescape"))
                paths.append(p)
            for fmt in ("human", "json", "sarif"):
                small, big = (run(ember, p, fmt) for p in paths)
                ratio = big / max(small, 0.005)
                flag = "SLOW" if big > 0.2 and ratio > 8 else "ok"
                slow += flag == "SLOW"
                print("%-30s %-6s 16K %7.3fs  64K %7.3fs  %s" % (name, fmt, small, big, flag))
    sys.exit(1 if slow else 0)


if __name__ == "__main__":
    main()
