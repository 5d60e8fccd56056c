#!/usr/bin/env bash
# Tests of tuning/check against fake /proc and /sys trees (bash and coreutils only, no root).
#
#   tests/tuning/check_test.sh
#
# Builds a host that meets the guide, two with gaps (an old kernel; a container-like 6.x host),
# runs tuning/check on them and asserts the ok/GAP verdicts, the fixes, the exit codes, the usage
# errors, that nothing is written without --apply (checksums of the trees), and what --apply
# writes. Last line: "N passed, M failed"; exit status 1 on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CHECK="$HERE/../../tuning/check"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL: %s\n' "$1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    | /'; }

# Runs tuning/check with a fake tree; sets OUT and RC. Environment: the tree's, plus "$@" args.
run() {
    local tree=$1; shift
    OUT=$(env -i PATH="$PATH" PROC_ROOT="$tree/proc" SYS_ROOT="$tree/sys" CHECK_CPUS=2 \
        CHECK_PAGE_SIZE=4096 CHECK_EUID="${EUID_FAKE:-1000}" \
        ${PROBE:+CHECK_IO_URING_PROBE="$PROBE"} bash "$CHECK" "$@" 2>&1)
    RC=$?
}
expect_rc() {
    if [ "$RC" = "$1" ]; then pass; else fail "$2: exit $RC, wanted $1" "$OUT"; fi
}
# expect_line REGEX WHAT: some line of OUT matches the extended regex.
expect_line() {
    if printf '%s\n' "$OUT" | grep -Eq -- "$1"; then pass; else fail "$2: no line matching /$1/" "$OUT"; fi
}
expect_no_line() {
    if printf '%s\n' "$OUT" | grep -Eq -- "$1"; then fail "$2: a line matches /$1/" "$OUT"; else pass; fi
}
# verdict VERDICT NAME: the line of NAME has that verdict.
verdict() { expect_line "^$1 +$2 +now: " "$2 is $1"; }

# put TREE PATH VALUE: a file of the fake tree.
put() { mkdir -p "$(dirname "$1/$2")"; printf '%s\n' "$3" > "$1/$2"; }
sysctl_put() { put "$1" "proc/sys/${2//.//}" "$3"; }
limits() {
    put "$1" proc/self/limits "Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            $2                $3                files
Max locked memory         $4              $4              bytes"
}
checksums() {
    local f
    local -a files=()
    shopt -s globstar nullglob
    for f in "$1"/**; do [ -f "$f" ] && files+=("$f"); done
    shopt -u globstar nullglob
    sha256sum "${files[@]}"
}

if [ -x "$CHECK" ]; then pass; else fail "tuning/check is not executable"; fi

# ---- a host as the guide wants (1M connections) ------------------------------------------------
GOOD="$WORK/good"
sysctl_put "$GOOD" kernel.osrelease 6.18.44-generic
sysctl_put "$GOOD" fs.nr_open 2097152
sysctl_put "$GOOD" fs.file-max 4194304
sysctl_put "$GOOD" net.core.somaxconn 4096
sysctl_put "$GOOD" net.ipv4.tcp_max_syn_backlog 8192
sysctl_put "$GOOD" net.ipv4.tcp_syncookies 1
printf '786432\t1048576\t1572864\n' > "$GOOD/proc/sys/net/ipv4/tcp_mem"
printf '4096\t131072\t6291456\n' > "$GOOD/proc/sys/net/ipv4/tcp_rmem"
printf '4096\t16384\t4194304\n' > "$GOOD/proc/sys/net/ipv4/tcp_wmem"
sysctl_put "$GOOD" net.core.netdev_max_backlog 16384
sysctl_put "$GOOD" net.ipv4.tcp_tw_reuse 1
printf '1024\t65535\n' > "$GOOD/proc/sys/net/ipv4/ip_local_port_range"
sysctl_put "$GOOD" net.netfilter.nf_conntrack_max 2097152
sysctl_put "$GOOD" net.netfilter.nf_conntrack_count 412
sysctl_put "$GOOD" kernel.io_uring_disabled 0
limits "$GOOD" 1100000 1100000 8388608
put "$GOOD" proc/self/status "Name:	bash
Seccomp:	0
Seccomp_filters:	0"
put "$GOOD" proc/meminfo "MemTotal:       32827080 kB
MemFree:        30000000 kB"
put "$GOOD" sys/kernel/mm/transparent_hugepage/enabled "always [madvise] never"
GOOD_SUM=$(checksums "$GOOD")

run "$GOOD"
expect_rc 0 "good host"
for name in kernel fs.nr_open fs.file-max RLIMIT_NOFILE net.core.somaxconn \
    net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_syncookies net.ipv4.tcp_mem net.ipv4.tcp_rmem \
    net.ipv4.tcp_wmem net.core.netdev_max_backlog net.ipv4.tcp_tw_recycle \
    net.netfilter.nf_conntrack_max RLIMIT_MEMLOCK kernel.io_uring_disabled io_uring \
    transparent_hugepage memory; do
    verdict ok "$name"
done
expect_no_line '^GAP' "good host has no gap"
expect_no_line 'ip_local_port_range|tcp_tw_reuse' "client checks only with --client"
expect_line '^18 ok, 0 gaps, 0 skipped \(target 1000000 connections' "good host summary"
expect_line '^ok +fs.nr_open +now: 2097152; want: >= 1051024$' "nr_open wanted is N x 1.05 + 1024"
expect_line '^ok +net.ipv4.tcp_mem +now: 786432 1048576 1572864; want: >= 750000 1000000 1500000 pages$' \
    "tcp_mem wanted is 3/4, 1, 3/2 pages per connection"

run "$GOOD" --client
expect_rc 0 "good host as a load client"
verdict ok net.ipv4.tcp_tw_reuse
verdict ok net.ipv4.ip_local_port_range

# Limits from the environment override the limits file.
OUT=$(env -i PATH="$PATH" PROC_ROOT="$GOOD/proc" SYS_ROOT="$GOOD/sys" CHECK_CPUS=2 \
    CHECK_PAGE_SIZE=4096 CHECK_EUID=1000 CHECK_NOFILE_SOFT=1024 CHECK_NOFILE_HARD=4096 \
    bash "$CHECK" 2>&1); RC=$?
expect_rc 1 "env limits override"
expect_line '^GAP +RLIMIT_NOFILE +now: soft 1024 hard 4096; want: hard >= 1051024; fix: LimitNOFILE=' \
    "RLIMIT_NOFILE from CHECK_NOFILE_*"
expect_line '"File descriptors"\)$' "RLIMIT_NOFILE names its README section"

# --target scales the wanted values: 2000 connections need 3124 files and 2000 tcp_mem pages.
run "$GOOD" --target 2000
expect_rc 0 "good host, small target"
expect_line '^ok +fs.nr_open +now: 2097152; want: >= 3124$' "--target scales the file limits"
expect_line '^ok +net.ipv4.tcp_mem +now: .*want: >= 1500 2000 3000 pages$' "--target scales tcp_mem"
run "$GOOD" --target=50000000
expect_rc 1 "good host, 50M target"
verdict GAP fs.nr_open
verdict GAP memory
verdict ok net.core.somaxconn

# ---- an old kernel with the distribution's defaults --------------------------------------------
OLD="$WORK/old"
sysctl_put "$OLD" kernel.osrelease 5.4.0-150-generic
sysctl_put "$OLD" fs.nr_open 1048576
sysctl_put "$OLD" fs.file-max 100000
sysctl_put "$OLD" net.core.somaxconn 128
sysctl_put "$OLD" net.ipv4.tcp_max_syn_backlog 1024
sysctl_put "$OLD" net.ipv4.tcp_syncookies 0
printf '92583\t123445\t185166\n' > "$OLD/proc/sys/net/ipv4/tcp_mem"
printf '8192\t262144\t6291456\n' > "$OLD/proc/sys/net/ipv4/tcp_rmem"
printf '4096\t16384\t4194304\n' > "$OLD/proc/sys/net/ipv4/tcp_wmem"
sysctl_put "$OLD" net.core.netdev_max_backlog 1000
sysctl_put "$OLD" net.ipv4.tcp_tw_recycle 1
sysctl_put "$OLD" net.ipv4.tcp_tw_reuse 2
printf '32768\t60999\n' > "$OLD/proc/sys/net/ipv4/ip_local_port_range"
limits "$OLD" 1024 4096 65536
put "$OLD" proc/self/status "Seccomp:	0"
put "$OLD" proc/meminfo "MemTotal:        8040000 kB"
put "$OLD" sys/kernel/mm/transparent_hugepage/enabled "always madvise [never]"
OLD_SUM=$(checksums "$OLD")

run "$OLD"
expect_rc 1 "old host has gaps"
verdict GAP kernel
verdict GAP fs.nr_open
verdict GAP fs.file-max
verdict GAP RLIMIT_NOFILE
verdict GAP net.core.somaxconn
verdict GAP net.ipv4.tcp_max_syn_backlog
verdict GAP net.ipv4.tcp_syncookies
verdict GAP net.ipv4.tcp_mem
verdict GAP net.ipv4.tcp_rmem
verdict ok net.ipv4.tcp_wmem
verdict GAP net.core.netdev_max_backlog
verdict GAP net.ipv4.tcp_tw_recycle
verdict skip net.netfilter.nf_conntrack_max
verdict GAP RLIMIT_MEMLOCK
verdict ok kernel.io_uring_disabled
verdict ok io_uring
verdict GAP transparent_hugepage
verdict GAP memory
expect_line '^3 ok, 14 gaps, 1 skipped' "old host summary"
expect_line '^GAP +net.core.somaxconn +now: 128; want: >= 4096; fix: sysctl -w net.core.somaxconn="4096" \(tuning/README.md, "Accept queue"\)$' \
    "somaxconn gap: value, fix and section"
expect_line '^GAP +net.ipv4.tcp_rmem +now: 8192 262144 6291456; .*fix: sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"' \
    "tcp_rmem fix lowers min and default, keeps the max"
expect_line '^GAP +RLIMIT_MEMLOCK +now: 65536 bytes; want: >= 10485760 \(kernel before 5.12\); fix: LimitMEMLOCK=infinity' \
    "memlock wanted: 2 workers x 5 MiB"
expect_line '"Locked memory"\)$' "memlock names its README section"
expect_line '^GAP +transparent_hugepage +now: never;' "THP mode read from the brackets"

run "$OLD" --client
verdict GAP net.ipv4.tcp_tw_reuse
verdict GAP net.ipv4.ip_local_port_range
expect_line 'fix: sysctl -w net.ipv4.ip_local_port_range="1024 65535" \(tuning/README.md, "Load clients"\)$' \
    "port range fix"

# ---- a 6.x container-like host: io_uring refused -----------------------------------------------
BOX="$WORK/box"
cp -r "$GOOD" "$BOX"
sysctl_put "$BOX" kernel.io_uring_disabled 2
put "$BOX" proc/self/status "Seccomp:	2"
put "$BOX" sys/kernel/mm/transparent_hugepage/enabled "[always] madvise never"
sysctl_put "$BOX" net.netfilter.nf_conntrack_max 262144
BOX_SUM=$(checksums "$BOX")
PROBE=EPERM run "$BOX"
expect_rc 1 "io_uring disabled"
verdict GAP kernel.io_uring_disabled
expect_line '^GAP +io_uring +now: io_uring_setup fails with EPERM \(kernel.io_uring_disabled=2\)' \
    "io_uring failure blamed on the sysctl first"
verdict ok transparent_hugepage
verdict GAP net.netfilter.nf_conntrack_max
sysctl_put "$BOX" kernel.io_uring_disabled 0
PROBE=EPERM run "$BOX"
verdict ok kernel.io_uring_disabled
expect_line '^GAP +io_uring +now: io_uring_setup fails with EPERM \(seccomp filter\); ringws runs on epoll; .*"Containers and seccomp"\)$' \
    "seccomp named as the cause"
PROBE=ok run "$BOX"
expect_line '^ok +io_uring +now: io_uring_setup works \(seccomp filter\)' "a filter that allows io_uring"
PROBE='' run "$BOX"
verdict skip io_uring
BOX_SUM=$(checksums "$BOX")

# ---- nothing is written without --apply --------------------------------------------------------
if [ "$(checksums "$GOOD")" = "$GOOD_SUM" ]; then pass; else fail "good tree changed"; fi
if [ "$(checksums "$OLD")" = "$OLD_SUM" ]; then pass; else fail "old tree changed"; fi
if [ "$(checksums "$BOX")" = "$BOX_SUM" ]; then pass; else fail "box tree changed"; fi

# ---- usage -------------------------------------------------------------------------------------
run "$GOOD" --target abc; expect_rc 2 "--target abc"
expect_line 'whole number' "--target abc says why"
run "$GOOD" --target 0; expect_rc 2 "--target 0"
run "$GOOD" --target; expect_rc 2 "--target without a value"
run "$GOOD" --bogus; expect_rc 2 "unknown option"
run "$GOOD" --help; expect_rc 0 "--help"
expect_line '^ +--apply' "--help lists --apply"
run "$OLD" --apply; expect_rc 2 "--apply without root"
expect_line 'needs root' "--apply without root says why"
if [ "$(checksums "$OLD")" = "$OLD_SUM" ]; then pass; else fail "--apply without root wrote"; fi

# ---- --apply as root writes the sysctls of the fake tree ---------------------------------------
APPLIED="$WORK/applied"
cp -r "$OLD" "$APPLIED"
EUID_FAKE=0 run "$APPLIED" --apply
expect_rc 1 "--apply leaves the gaps it cannot fix"
verdict fixed net.core.somaxconn
verdict fixed net.ipv4.tcp_mem
verdict fixed net.ipv4.tcp_rmem
verdict fixed net.ipv4.tcp_tw_recycle
verdict GAP RLIMIT_NOFILE
verdict GAP transparent_hugepage
expect_line '^3 ok, 5 gaps, 1 skipped, 9 fixed by --apply' "--apply summary"
if [ "$(cat "$APPLIED/proc/sys/net/core/somaxconn")" = 4096 ]; then pass; else fail "somaxconn not written"; fi
if [ "$(cat "$APPLIED/proc/sys/net/ipv4/tcp_mem")" = "750000 1000000 1500000" ]; then pass
else fail "tcp_mem not written"; fi
if [ "$(cat "$APPLIED/sys/kernel/mm/transparent_hugepage/enabled")" = "always madvise [never]" ]; then pass
else fail "--apply wrote outside the sysctls"; fi
run "$APPLIED"
verdict ok net.core.somaxconn
verdict ok fs.nr_open

printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
