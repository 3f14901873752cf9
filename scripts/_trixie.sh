# Shared by scripts/skopeo-keyprovider and scripts/trixie-tools (sourced, not run): download Debian 13 (trixie)
# packages on an older Debian with a private apt configuration derived from the machine's own apt sources (the
# same mirrors, the suite renamed). Nothing is installed system-wide. Callers define die().
TRIXIE_SUITE=trixie

# The machine's apt sources with the release's suite names (codename, codename-updates, ...) renamed to trixie.
trixie_derive_sources() {
  local out=$1 codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot tell this machine's Debian codename from /etc/os-release"
  mkdir -p "$out"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E "/^Suites:/ s/(^|[[:space:]])${codename}(-[a-z]+)?/\\1${TRIXIE_SUITE}\\2/g" "$f" > "$out/$(basename "$f")"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # One-line format: deb [options] URI SUITE COMPONENTS...
    awk -v c="$codename" -v s="$TRIXIE_SUITE" '
      /^[[:space:]]*deb[[:space:]]/ {
        i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        sub("^" c, s, $(i + 1)); print; next }' "$f" > "$out/$(basename "$f")"
  done
  grep -rqs "$TRIXIE_SUITE" "$out" || die "no Debian apt source on this machine names suite '$codename' to derive $TRIXIE_SUITE from"
}

# trixie_download WORK PACKAGE...: the packages' .deb files into WORK/debs, extracted into WORK/root.
trixie_download() {
  local work=$1 apt_opts deb; shift
  command -v apt-get >/dev/null || die "apt-get is missing: cannot download Debian $TRIXIE_SUITE's $*"
  trixie_derive_sources "$work/sources"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources"
            -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null
            -o APT::Architecture=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
  apt-get "${apt_opts[@]}" update >&2 || die "apt-get update for suite $TRIXIE_SUITE failed (see above)"
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download "$@" >&2) \
    || die "apt-get download of $* from $TRIXIE_SUITE failed (see above)"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
}
