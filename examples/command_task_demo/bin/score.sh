#!/bin/sh
# A command task: the context arrives as JSON on stdin; print a JSON object of updates.
# Uses only POSIX sh and python3 (present wherever cloacina runs) to read the JSON.
set -eu
context=$(cat)
printf '%s' "$context" | python3 -c '
import json, sys
ctx = json.load(sys.stdin)
orders = ctx.get("orders")
if not isinstance(orders, list):
    sys.exit("score.sh: the context has no list of orders")
print(json.dumps({"order_count": len(orders), "score": sum(orders) // max(len(orders), 1)}))
'
