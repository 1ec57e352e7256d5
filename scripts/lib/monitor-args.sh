# shellcheck shell=bash disable=SC2034  # the variables set here are the caller's
# Shared argument handling of scripts/monitor-*.sh; sourced, not run.
#
#   monitor_args NAME DEFAULT_PORTS "$@"
#
# Parses [--once] [HOST] [PORTS] [INTERVAL], --host, --ports (--range), --interval,
# --timeout and -h/--help; checks that curl and python3 are present. Sets ONCE, HOST,
# PORTS, INTERVAL, TIMEOUT, FIRST and LAST (the port range) and URL_HOST (HOST with
# brackets when it is an IPv6 address). --help prints the calling script's leading
# comment block and exits 0; a bad argument prints one line "NAME: …" on stderr and
# exits 2.

# The leading comment block of the calling script, without the comment marks.
monitor_usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

monitor_die() {
    echo "$MONITOR_NAME: $*" >&2
    exit 2
}

monitor_args() {
    MONITOR_NAME=$1 PORTS=$2
    shift 2
    ONCE=0 HOST=localhost INTERVAL=2 TIMEOUT=1
    local positional=()
    while [ $# -gt 0 ]; do
        case "$1" in
            -h | --help) monitor_usage; exit 0 ;;
            --once) ONCE=1 ;;
            --host | --ports | --range | --interval | --timeout)
                if [ $# -lt 2 ] || [ -z "$2" ]; then monitor_die "$1 needs a value (see --help)"; fi
                case "$1" in
                    --host) HOST=$2 ;;
                    --ports | --range) PORTS=$2 ;;
                    --interval) INTERVAL=$2 ;;
                    --timeout) TIMEOUT=$2 ;;
                esac
                shift ;;
            -*) monitor_die "unknown option $1 (see --help)" ;;
            *) positional+=("$1") ;;
        esac
        shift
    done
    [ ${#positional[@]} -gt 0 ] && HOST=${positional[0]}
    [ ${#positional[@]} -gt 1 ] && PORTS=${positional[1]}
    [ ${#positional[@]} -gt 2 ] && INTERVAL=${positional[2]}
    [ ${#positional[@]} -gt 3 ] && monitor_die "too many arguments (see --help)"

    local tool
    for tool in curl python3; do
        command -v "$tool" >/dev/null || monitor_die "$tool is required (e.g. apt-get install -y $tool)"
    done
    if [[ $PORTS =~ ^([0-9]+)-([0-9]+)$ ]]; then
        FIRST=${BASH_REMATCH[1]} LAST=${BASH_REMATCH[2]}
    elif [[ $PORTS =~ ^[0-9]+$ ]]; then
        FIRST=$PORTS LAST=$PORTS
    else
        monitor_die "PORTS must be FIRST-LAST or a port, got '$PORTS'"
    fi
    # 10# so that a leading zero is not read as octal; the length check keeps it in range.
    { [ ${#FIRST} -le 5 ] && [ ${#LAST} -le 5 ] && ((10#$FIRST >= 1 && 10#$LAST <= 65535 &&
        10#$FIRST <= 10#$LAST)); } || monitor_die "bad port range $FIRST-$LAST"
    FIRST=$((10#$FIRST)) LAST=$((10#$LAST))
    [[ $INTERVAL =~ ^[0-9]+([.][0-9]+)?$ ]] ||
        monitor_die "INTERVAL must be a number of seconds, got '$INTERVAL'"
    [[ $TIMEOUT =~ ^[0-9]+([.][0-9]+)?$ ]] ||
        monitor_die "--timeout must be a number of seconds, got '$TIMEOUT'"
    URL_HOST=$HOST
    if [[ $HOST == *:* && $HOST != \[* ]]; then URL_HOST="[$HOST]"; fi
    return 0
}
