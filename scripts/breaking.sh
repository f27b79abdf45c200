#!/usr/bin/env bash
# `make breaking`: buf breaking of the working tree's proto/ (uncommitted
# changes included) against what was released, with the rules of buf.yaml's
# `breaking.use` (FILE; README "Breaking changes"). It guarantees one baseline,
# named in its first line of output, the first of these that exists:
#
#   1. BREAKING_AGAINST=<git ref>, when set (a release branch, a tag to skip to);
#   2. the newest release tag (v<digit>*) reachable from HEAD that is not on
#      HEAD itself: on a tagged release commit the gate is the release before;
#   3. no release yet: the merge base of HEAD with main (origin/main, else
#      main): what the branch started from;
#   4. on main itself (the merge base is HEAD) with no release: HEAD~1, the
#      previous commit only. This is a last resort and says so: a change
#      split over two commits on main is judged one commit at a time.
#
# With none (one commit, no tag, no main), or a baseline without proto/, it
# says so and passes. A shallow clone fails: the tags and main's history it
# lacks would silently pick a wrong baseline (fetch with --unshallow --tags,
# or check out with full history: actions/checkout fetch-depth 0).
# The baseline's proto/ and buf.yaml are taken with `git archive` into a
# temporary directory, so buf never clones or fetches anything itself.
set -euo pipefail

say() { printf 'buf breaking: %s\n' "$*"; }

root=$(git rev-parse --show-toplevel)
cd "$root"

if [ "$(git rev-parse --is-shallow-repository)" = true ] && [ -z "${BREAKING_AGAINST:-}" ]; then
  say "this is a shallow clone: the release tags and main's history are needed to pick the baseline." >&2
  say "fetch them (git fetch --unshallow --tags) or set BREAKING_AGAINST=<ref>." >&2
  exit 1
fi

head=$(git rev-parse HEAD)
against=""
why=""
if [ -n "${BREAKING_AGAINST:-}" ]; then
  against=$(git rev-parse --verify "${BREAKING_AGAINST}^{commit}")
  why="BREAKING_AGAINST=${BREAKING_AGAINST}"
else
  excludes=()
  while IFS= read -r t; do [ -n "$t" ] && excludes+=(--exclude "$t"); done < <(git tag --points-at HEAD --list 'v[0-9]*')
  if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' ${excludes[@]+"${excludes[@]}"} HEAD 2>/dev/null); then
    against=$(git rev-parse --verify "${tag}^{commit}")
    why="the last release tag ${tag}"
  else
    main=""
    for ref in refs/remotes/origin/main refs/heads/main; do
      if git rev-parse -q --verify "${ref}^{commit}" >/dev/null; then main=$ref; break; fi
    done
    base=""
    if [ -n "$main" ]; then base=$(git merge-base HEAD "$main" || true); fi
    if [ -n "$base" ] && [ "$base" != "$head" ]; then
      against=$base
      why="no release tag yet: the merge base with ${main#refs/*/} ($(git rev-parse --short "$main") there)"
    elif git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
      against=$(git rev-parse HEAD~1)
      why="no release tag yet and HEAD is on main: the previous commit only (last resort; tag a release, git tag v0.1.0, to gate against it)"
    else
      say "no release tag, no main to branch from and no previous commit: nothing to compare against"
      exit 0
    fi
  fi
fi

short=$(git rev-parse --short "$against")
if [ -z "$(git ls-tree "$against" proto)" ]; then
  say "against ${why} (${short}): it has no proto/, nothing to compare"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if git cat-file -e "${against}:buf.yaml" 2>/dev/null; then
  git archive "$against" buf.yaml proto | tar -x -C "$tmp"
else
  # A baseline older than buf.yaml: read its proto/ with today's module layout.
  git archive "$against" proto | tar -x -C "$tmp"
  cp buf.yaml "$tmp/"
fi

# buf.yaml's breaking.use, for the log: "FILE".
use=$(awk '/^breaking:/ { b = 1; next } /^[^ #]/ { b = 0 } b && /^  [a-z]/ { u = ($1 == "use:") } b && u && /^ +- / { sub(/^ +- /, ""); printf "%s%s", (n++ ? "," : ""), $0 }' buf.yaml)
say "against ${why} (${short}); rules: ${use:-the default} (buf.yaml breaking.use)"
buf breaking --against "$tmp"
say "no breaking change"
