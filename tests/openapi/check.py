#!/usr/bin/python3
"""check.py - the OpenAPI description against itself and against every
answer the integration suites received.

    tests/openapi/check.py [--spec openapi/openapi.json]
                           [--selftest tests/openapi/selftest] LOGDIR...

--selftest first runs the checker on hand-made exchanges: each
good-*.jsonl there must pass and each bad-*.jsonl (one kind of drift
each: an undocumented status, field, enum value, header ...) must fail.

First the description: it must be OpenAPI 3.1 (validated with
openapi-spec-validator when that is installed; always with the checks
below: every $ref resolves, every schema is a valid JSON Schema 2020-12,
operation ids are unique, path parameters are declared).  Then every line
of LOGDIR/*.jsonl (written by tests/integration/harness.c when
JOBD_OPENAPI_LOG names LOGDIR): one exchange, request and answer.  For
each one:

  - the path and method must be an operation of the description (HEAD is
    checked as GET, without a body); a request to a path no operation has,
    or with a method the path does not have, must get one of the answers of
    x-jobd-unrouted (401, 404, 405 as problems);
  - the status must be documented for it, or be one of x-jobd-any-request
    (the answers given before routing: framing errors, 414, 431 ...);
  - the Content-Type must be one the response documents (none: no body;
    x-jobd-untyped: the HTTP library's HTML pages come without one);
  - a JSON body must validate against the schema of that status and
    content type, and a problem's "status" must be the HTTP status;
  - documented response headers must be there when required, and match
    their schema when there;
  - a request that got a 2xx answer must have sent only documented query
    parameters, valid values of the documented header parameters, and (when
    the harness logged it whole) a body valid against the requestBody.

Identical answers (same operation, status, headers and body) are checked
once.  Failures name the suite, the request and the schema error; the exit
status is 1 when there is one.  Needs python3-jsonschema (Debian).
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import urllib.parse

import jsonschema

METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
           "trace")
MAX_SHOWN = 3   # failures printed per distinct error

# Job ids (anywhere: "/jobs/<id>" too) and times (as whole JSON strings):
# answers that differ only in these are the same answer to the description
# (every place that takes one of them takes any of them: no enum or const
# holds one), so they are checked once.  Anything else that differs is
# checked again.
SAME = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}'
                  r'-[0-9a-f]{12}|"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:'
                  r'[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"')


def same(text):
    return SAME.sub("~", text) if isinstance(text, str) else text


def die(msg):
    print("openapi-check: " + msg, file=sys.stderr)
    sys.exit(1)


def pointer(doc, ref):
    """The object a local $ref ("#/a/b") names, or None."""
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def deref(doc, obj):
    seen = 0
    while isinstance(obj, dict) and "$ref" in obj and seen < 16:
        obj = pointer(doc, obj["$ref"])
        seen += 1
    return obj


# ---- the description itself ----

def check_description(doc):
    errors = []
    if not str(doc.get("openapi", "")).startswith("3.1."):
        errors.append("openapi is %r, not 3.1.x" % doc.get("openapi"))
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        try:
            validate(doc)
        except Exception as e:  # the validator's own error types vary
            errors.append("openapi-spec-validator: %s" % str(e)[:2000])

    def walk(node, where):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and pointer(doc, ref) is None:
                errors.append("%s: $ref %s resolves to nothing"
                              % (where, ref))
            for k, v in node.items():
                walk(v, where + "/" + str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s/%d" % (where, i))
    walk(doc, "#")

    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            errors.append("components/schemas/%s: %s" % (name, e.message))

    ids = collections.Counter()
    for path, item in doc.get("paths", {}).items():
        item = deref(doc, item)
        declared = set()
        for p in item.get("parameters", []):
            p = deref(doc, p)
            if p.get("in") == "path":
                declared.add(p["name"])
        for m in METHODS:
            op = item.get(m)
            if op is None:
                continue
            ids[op.get("operationId")] += 1
            names = set(declared)
            for p in op.get("parameters", []):
                p = deref(doc, p)
                if p.get("in") == "path":
                    names.add(p["name"])
            for t in re.findall(r"\{([^}]+)\}", path):
                if t not in names:
                    errors.append("%s %s: path parameter %s not declared"
                                  % (m.upper(), path, t))
            if not op.get("responses"):
                errors.append("%s %s: no responses" % (m.upper(), path))
    for opid, n in ids.items():
        if opid is None:
            errors.append("an operation has no operationId")
        elif n > 1:
            errors.append("operationId %s used %d times" % (opid, n))
    return errors


# ---- the exchanges ----

class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.routes = []
        for path, item in doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+",
                              re.escape(path)) + "$"
            # Literal paths before templated ones.
            self.routes.append((path.count("{"), re.compile(rx), path,
                                deref(doc, item)))
        self.routes.sort(key=lambda r: r[0])
        self.validators = {}
        self.unrouted = doc.get("x-jobd-unrouted", {}).get("responses", {})
        self.anyreq = doc.get("x-jobd-any-request", {}).get("responses", {})
        self.seen_ops = collections.Counter()
        self.done = {}  # hash of an answer's identity: its errors

    def validator(self, key, schema):
        v = self.validators.get(key)
        if v is None:
            root = {"components": self.doc.get("components", {}),
                    "allOf": [schema]}
            v = jsonschema.Draft202012Validator(
                root, format_checker=jsonschema.FormatChecker())
            self.validators[key] = v
        return v

    def check_request(self, ex, where, item, op, target):
        """What a request that succeeded sent must be documented: its
        query parameters and the headers the description names must be
        parameters of the operation with valid values, and its body (when
        logged whole) must validate against the requestBody."""
        errs = []
        params = {}
        for p in item.get("parameters", []) + op.get("parameters", []):
            p = deref(self.doc, p)
            params[(p["in"], p["name"].lower())] = p
        query = target.split("?", 1)[1] if "?" in target else ""
        for name, value in urllib.parse.parse_qsl(query,
                                                  keep_blank_values=True):
            p = params.get(("query", name.lower()))
            if p is None:
                errs.append("query parameter %s is not documented" % name)
                continue
            v = self.validator(("q", where, name), p.get("schema", {}))
            for e in v.iter_errors(value):
                errs.append("query parameter %s=%r: %s"
                            % (name, value, e.message))
        for name, value in ex.get("request_headers", {}).items():
            p = params.get(("header", name.lower()))
            if p is None:
                continue  # Content-Type, Authorization: not parameters
            v = self.validator(("rh", where, name), p.get("schema", {}))
            for e in v.iter_errors(value):
                errs.append("request header %s: %r: %s"
                            % (name, value, e.message))
        body = deref(self.doc, op.get("requestBody"))
        raw = ex.get("request_body")
        if body and raw is not None and not ex.get("request_body_cut"):
            media = body.get("content", {}).get("application/json", {})
            try:
                value = json.loads(raw)
            except ValueError:
                return errs  # answered 2xx: not ours to judge here
            v = self.validator(("rb", where), media.get("schema", {}))
            for e in list(v.iter_errors(value))[:3]:
                at = "/".join(str(p) for p in e.absolute_path)
                errs.append("request body%s (accepted): %s"
                            % ("/" + at if at else "", e.message[:300]))
        return errs

    def route(self, path):
        for _, rx, template, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def check(self, ex):
        """Returns (identity, list of errors) for one logged exchange."""
        method = ex.get("method", "-")
        target = ex.get("target", "")
        path = target
        m = re.match(r"^https?://[^/]*(/.*)?$", path, re.I)
        if m:
            path = m.group(1) or "/"
        path = path.split("?", 1)[0].split("#", 1)[0]
        status = str(ex.get("status"))
        headers = {k.lower(): v for k, v in ex.get("headers", {}).items()}
        ctype = headers.get("content-type")
        body = ex.get("body", "")
        head = method == "HEAD"

        template, item = self.route(path)
        op = None
        # Methods are case-sensitive (RFC 9110 9.1): "get" is no GET.
        if item is not None and method.lower() in METHODS and \
                method == method.upper():
            op = item.get(method.lower())
            if op is None and head:
                op = item.get("get")
        if op is not None:
            where = "%s %s" % (method, template)
            responses = op.get("responses", {})
        else:
            where = "%s (unrouted: %s)" % (method, template or "no path")
            responses = self.unrouted
        resp = None
        for key in (status, status[0] + "XX", "default"):
            if key in responses:
                resp = responses[key]
                break
        if resp is None and status in self.anyreq:
            resp = self.anyreq[status]
            where += " (before routing)"
        # Identical answers are checked once: the documented headers only
        # (Date and the like differ every second).
        documented = deref(self.doc, resp).get("headers", {}) if resp else {}
        ident = (where, method == "HEAD", status, ctype,
                 same(body) if not ex.get("body_cut") else None,
                 tuple((n, same(headers.get(n.lower())))
                       for n in sorted(documented)))
        # A request that succeeded is checked too (once per request).
        rident = None
        if op is not None and resp is not None and status.startswith("2"):
            rident = ("request", where,
                      same(target.split("?", 1)[1]) if "?" in target
                      else "",
                      tuple(sorted(ex.get("request_headers", {}).items())),
                      same(ex.get("request_body")))
        if resp is not None:
            self.seen_ops[(where, status)] += 1
        rerrs = []
        if rident is not None:
            rkey = hash(rident)
            if rkey not in self.done:
                self.done[rkey] = self.check_request(ex, where, item, op,
                                                     target)
            rerrs = self.done[rkey]
        key = hash(ident)
        if key in self.done:
            return ident, where, self.done[key] + rerrs

        def judge(resp):
            if resp is None:
                return ["status %s is not documented here (documented: "
                        "%s)" % (status, ", ".join(sorted(responses)))]
            resp = deref(self.doc, resp)
            errs = []

            for name, h in resp.get("headers", {}).items():
                h = deref(self.doc, h)
                value = headers.get(name.lower())
                if value is None and h.get("required"):
                    errs.append("no %s header (required)" % name)
                if value is None or "schema" not in h:
                    continue
                v = self.validator(("h", where, status, name), h["schema"])
                for e in v.iter_errors(value):
                    errs.append("header %s: %r: %s"
                                % (name, value, e.message))

            content = resp.get("content")
            if not content:
                if body and not head:
                    errs.append("a body where none is documented")
                return errs
            media = None
            if ctype is None and resp.get("x-jobd-untyped"):
                # The HTTP library's own pages come without a Content-Type.
                for mt in content:
                    if mt.startswith("text/html"):
                        media = mt
            elif ctype is not None:
                norm = re.sub(r"\s*;\s*", "; ", ctype.strip().lower())
                for mt in content:
                    if mt.lower() == norm:
                        media = mt
                if media is None:
                    base = norm.split(";")[0]
                    for mt in content:
                        if mt.lower().split(";")[0].strip() == base:
                            media = mt
            if media is None:
                errs.append("Content-Type %r is not documented (documented: "
                            "%s)" % (ctype, ", ".join(content)))
                return errs
            if head or ex.get("body_cut"):
                return errs
            schema = content[media].get("schema")
            if schema is None:
                return errs
            base = media.split(";")[0].strip().lower()
            if base == "application/json" or base.endswith("+json"):
                try:
                    value = json.loads(body)
                except ValueError as e:
                    errs.append("the body is not JSON (%s): %.200r"
                                % (e, body))
                    return errs
            else:
                value = body
            v = self.validator(("b", where, status, media), schema)
            found = sorted(v.iter_errors(value), key=lambda e: list(e.path))
            for e in found[:5]:
                at = "/".join(str(p) for p in e.absolute_path)
                errs.append("body%s: %s" % ("/" + at if at else "",
                                            e.message[:500]))
            if base == "application/problem+json" and isinstance(value, dict) \
                    and str(value.get("status")) != status:
                errs.append("problem status %r is not the HTTP status %s"
                            % (value.get("status"), status))
            return errs

        errs = judge(resp)
        self.done[key] = errs
        return ident, where, errs + rerrs


def check_files(checker, files):
    """Checks every exchange of files: (answers, distinct, failures), where
    failures maps (where, status, error) to the exchanges that had it."""
    total = 0
    done = {}
    failures = collections.OrderedDict()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    ex = json.loads(line)
                except ValueError as e:
                    failures.setdefault(("log", path, str(e)), []).append(
                        "%s:%d: not a JSON line: %s" % (path, n, e))
                    continue
                total += 1
                ident, where, errs = checker.check(ex)
                done[hash(ident)] = True
                for e in errs:
                    rb = ex.get("request_body")
                    failures.setdefault((where, ex.get("status"), e),
                                        []).append(
                        "%s (%s, pid %s): %s %s -> %s %s%s" % (
                            ex.get("suite"), os.path.basename(path),
                            ex.get("pid"), ex.get("method"),
                            ex.get("target", "")[:200], ex.get("status"),
                            ex.get("headers", {}).get("Content-Type", ""),
                            "\n      request body: %.200r" % rb
                            if rb else ""))
    return total, len(done), failures


def selftest(checker, folder):
    """Each good-*.jsonl of folder must pass and each bad-*.jsonl must
    fail: the checker catches what it is for.  Returns the problems."""
    problems = []
    files = sorted(glob.glob(os.path.join(folder, "*.jsonl")))
    if not files:
        problems.append("no self-test cases in %s" % folder)
    for path in files:
        name = os.path.basename(path)
        _, _, failures = check_files(checker, [path])
        if name.startswith("bad-") and not failures:
            problems.append("%s: no failure found (the checker misses "
                            "this kind of drift)" % name)
        elif name.startswith("good-") and failures:
            problems.append("%s: %s" % (name, "; ".join(
                "%s -> %s: %s" % k for k in failures)))
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "openapi",
        "openapi.json"))
    ap.add_argument("--coverage", action="store_true",
                    help="list documented answers no suite received")
    ap.add_argument("--selftest", metavar="DIR",
                    help="first check that DIR/good-*.jsonl pass and "
                    "DIR/bad-*.jsonl fail")
    ap.add_argument("logdirs", nargs="*")
    args = ap.parse_args()

    try:
        with open(args.spec, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        die("%s: %s" % (args.spec, e))
    errors = check_description(doc)
    if errors:
        for e in errors:
            print("openapi-check: %s: %s" % (args.spec, e), file=sys.stderr)
        sys.exit(1)
    print("openapi-check: %s is valid OpenAPI %s" % (args.spec,
                                                    doc["openapi"]))

    checker = Checker(doc)
    if args.selftest:
        problems = selftest(checker, args.selftest)
        for p in problems:
            print("openapi-check: self-test: " + p, file=sys.stderr)
        if problems:
            sys.exit(1)
        print("openapi-check: self-test: %d cases in %s behave"
              % (len(glob.glob(os.path.join(args.selftest, "*.jsonl"))),
                 args.selftest))
        checker = Checker(doc)  # coverage counts the suites' answers only
    files = []
    for d in args.logdirs:
        files += sorted(glob.glob(os.path.join(d, "*.jsonl")))
    if args.logdirs and not files:
        die("no exchange logs in %s (run make integration first)"
            % " ".join(args.logdirs))
    total, distinct, failures = check_files(checker, files)
    for (where, status, err), cases in failures.items():
        print("FAIL %s -> %s: %s" % (where, status, err))
        for c in cases[:MAX_SHOWN]:
            print("    " + c)
        if len(cases) > MAX_SHOWN:
            print("    ... and %d more" % (len(cases) - MAX_SHOWN))
    print("openapi-check: %d answers (%d distinct) from %d logs; %d "
          "failure(s) of %d kind(s)" % (
              total, distinct, len(files),
              sum(len(c) for c in failures.values()), len(failures)))
    if args.coverage:
        for path, item in doc["paths"].items():
            item = deref(doc, item)
            for m in METHODS:
                if m in item:
                    for st in item[m].get("responses", {}):
                        if (("%s %s" % (m.upper(), path)), st) not in \
                                checker.seen_ops:
                            print("not seen: %s %s -> %s"
                                  % (m.upper(), path, st))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
