#!/usr/bin/python3
# bench/cgcalls.py - calls to the named functions in a callgrind.out file
# (all callers summed), e.g. allocations: cgcalls.py FILE malloc calloc realloc
import re
import sys

names = {}
calls = {}
want = set(sys.argv[2:])
cfn = None
with open(sys.argv[1], errors='replace') as f:
    for line in f:
        m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?', line)
        if m:
            key, num, name = m.groups()
            if name:
                names[num] = name.strip()
            if key == 'cfn':
                cfn = names.get(num)
            continue
        m = re.match(r'calls=(\d+)', line)
        if m and cfn:
            base = re.sub(r"'\d+$", '', cfn)
            if base in want:
                calls[base] = calls.get(base, 0) + int(m.group(1))
            cfn = None
for n in sys.argv[2:]:
    print(n, calls.get(n, 0))
