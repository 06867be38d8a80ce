#!/usr/bin/env python3
"""The documentation does not drift: README.md and docs/*.md are checked against the code.

1. Every ```yaml block is a whole experiment file and must pass `flowlab validate` (schema, plugins, parameters),
   unless the line before it (blank lines aside) is the HTML comment <!-- fragment -->: fragments are counted and
   skipped. Each block is written to WORK/<page>-<n>.yaml and validated with WORK as the working directory.
2. Every relative link and image, [text](target) or ![alt](target), names a file that exists, and a #anchor in it
   names a heading of that page (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens).

Usage: check_docs.py FLOWLAB_BINARY SOURCE_DIR WORK_DIR. Exit 0 when everything holds, 1 otherwise.
"""
import os
import re
import shutil
import subprocess
import sys

FENCE = re.compile(r'^```(\w*)\s*$')
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)\)')


def pages(src):
    out = [os.path.join(src, 'README.md')]
    docs = os.path.join(src, 'docs')
    out += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith('.md'))
    return out


def blocks(lines):
    """(language, first line number, text, fragment) for each fenced block; and the lines outside fences."""
    found, prose, i = [], [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        fragment = j >= 0 and lines[j].strip() == '<!-- fragment -->'
        start, i = i + 1, i + 1
        while i < len(lines) and not lines[i].startswith('```'):
            i += 1
        found.append((m.group(1), start + 1, '\n'.join(lines[start:i]) + '\n', fragment))
        i += 1
    return found, prose


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)  # GitHub keeps letters, digits, _, - and spaces
    return s.replace(' ', '-')


def anchors(lines):
    seen, out, fence = {}, set(), False
    for line in lines:
        if line.startswith('```'):
            fence = not fence
        m = None if fence else re.match(r'^#{1,6} (.*)', line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f'{base}-{n}')
    return out


def main():
    flowlab, src, work = (os.path.abspath(a) for a in sys.argv[1:4])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, FLOWLAB_PLUGIN_PATH='')
    failures, validated, fragments, links = [], 0, 0, 0
    texts = {p: open(p, encoding='utf-8').read().split('\n') for p in pages(src)}
    for path, lines in texts.items():
        rel = os.path.relpath(path, src)
        found, prose = blocks(lines)
        for n, (lang, line, text, fragment) in enumerate(found):
            if lang != 'yaml':
                continue
            if fragment:
                fragments += 1
                continue
            name = f"{rel.replace('/', '_').replace('.md', '')}-{n}.yaml"
            with open(os.path.join(work, name), 'w', encoding='utf-8') as f:
                f.write(text)
            r = subprocess.run([flowlab, 'validate', name], cwd=work, env=env, capture_output=True, text=True)
            validated += 1
            if r.returncode != 0:
                failures.append(f'{rel}:{line}: yaml block ({name}) fails flowlab validate: '
                                f'{(r.stderr or r.stdout).strip()}')
            else:
                print(f'ok   {rel}:{line}: {r.stdout.strip()}')
        for line_no, line in prose:
            for target in LINK.findall(re.sub(r'`[^`]*`', '', line)):
                if re.match(r'^[a-z]+:', target):
                    continue  # http:, https:, mailto:
                links += 1
                file_part, _, anchor = target.partition('#')
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(dest):
                    failures.append(f'{rel}:{line_no}: link to {target}: {os.path.relpath(dest, src)} does not exist')
                elif anchor and dest.endswith('.md'):
                    lines_dest = texts.get(dest) or open(dest, encoding='utf-8').read().split('\n')
                    if anchor not in anchors(lines_dest):
                        failures.append(f'{rel}:{line_no}: link to {target}: no heading #{anchor} in '
                                        f'{os.path.relpath(dest, src)}')
    for f in failures:
        print('FAIL ' + f)
    print(f'check_docs: {len(texts)} pages; {validated} yaml experiments validated, {fragments} fragments skipped; '
          f'{links} relative links checked; {len(failures)} failures')
    return 1 if failures or validated == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
