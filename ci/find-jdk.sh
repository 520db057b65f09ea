#!/usr/bin/env bash
# Sourced by ./megatron and the ci/ scripts: megatron_find_jdk prints the home of a JDK that can
# build and run Megatron-J, or explains what to install and returns 1.
# Order: $JAVA_HOME, then every JDK under /usr/lib/jvm (newest first).
# Megatron-J is compiled with --release 25 (Panama FFM is final since JDK 22, and we use JDK 25's
# class files), so the JDK must be 25 or newer.

MEGATRON_MIN_JAVA=25

megatron_java_major() { # $1 = JDK home; prints the feature version or nothing
  local java="$1/bin/java" line
  [[ -x "$java" && -x "$1/bin/javac" ]] || return 0
  line="$("$java" -version 2>&1 | head -n 1)"
  line="${line#*version \"}"; line="${line%%\"*}"
  line="${line#1.}"
  echo "${line%%[.+-]*}"
}

megatron_find_jdk() {
  local candidates=() home major
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  if [[ -d /usr/lib/jvm ]]; then
    while IFS= read -r home; do candidates+=("$home"); done < <(ls -d /usr/lib/jvm/*/ 2>/dev/null | sed 's:/$::' | sort -rV)
  fi
  for home in "${candidates[@]}"; do
    major="$(megatron_java_major "$home")"
    if [[ -n "$major" && "$major" =~ ^[0-9]+$ && "$major" -ge $MEGATRON_MIN_JAVA ]]; then
      echo "$home"
      return 0
    fi
  done
  {
    echo "megatron: no JDK $MEGATRON_MIN_JAVA or newer found (looked at JAVA_HOME=${JAVA_HOME:-<unset>} and /usr/lib/jvm/*)."
    echo "  Megatron-J needs a full JDK (java and javac) of version $MEGATRON_MIN_JAVA or newer. Install one, e.g.:"
    echo "    Debian/Ubuntu: apt-get install -y temurin-25-jdk   (after adding the Adoptium apt repository,"
    echo "                   https://adoptium.net/installation/linux/), or openjdk-25-jdk where your release has it"
    echo "    any Linux:     unpack a JDK 25 from https://adoptium.net and set JAVA_HOME to it"
  } >&2
  return 1
}
