#!/usr/bin/env python3
"""Trims a discovery document to the methods named, plus every schema they reach.

    python3 trim.py FULL.json OUT.json resource.method [resource.sub.method ...] [schema:Name ...]

`schema:Name` keeps a schema no method reaches (an operation's metadata type, say).

FULL.json comes from the google-api-python-client wheel
(googleapiclient/discovery_cache/documents/). Top-level keys other than those listed in KEEP
are dropped; methods and schemas are copied unchanged.
"""
import json
import sys

KEEP = ["auth", "baseUrl", "batchPath", "discoveryVersion", "id", "kind", "name", "parameters",
        "protocol", "resources", "revision", "rootUrl", "schemas", "servicePath", "title", "version"]


def main(src, out, wanted):
    doc = json.load(open(src))
    resources = {}
    refs = []
    for path in wanted:
        if path.startswith("schema:"):
            refs.append(path[len("schema:"):])
            continue
        *res_path, method = path.split(".")
        node, target = doc, resources
        for name in res_path:
            node = node["resources"][name]
            target = target.setdefault(name, {})
        m = node["methods"][method]
        target.setdefault("methods", {})[method] = m
        for key in ("request", "response"):
            if key in m:
                refs.append(m[key]["$ref"])
    def nest(tree):
        # {name: {"methods":…, other names: subtrees}} → discovery's {"methods", "resources"}
        out = {}
        for name, sub in tree.items():
            entry = {}
            if "methods" in sub:
                entry["methods"] = sub["methods"]
            children = {k: v for k, v in sub.items() if k != "methods"}
            if children:
                entry["resources"] = nest(children)
            out[name] = entry
        return out
    schemas = {}
    def reach(value):
        if isinstance(value, dict):
            ref = value.get("$ref")
            if ref and ref not in schemas:
                schemas[ref] = doc["schemas"][ref]
                reach(schemas[ref])
            for v in value.values():
                reach(v)
        elif isinstance(value, list):
            for v in value:
                reach(v)
    for ref in refs:
        reach({"$ref": ref})
    trimmed = {k: doc[k] for k in KEEP if k in doc}
    trimmed["resources"] = nest(resources)
    trimmed["schemas"] = dict(sorted(schemas.items()))
    with open(out, "w") as f:
        json.dump(trimmed, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
