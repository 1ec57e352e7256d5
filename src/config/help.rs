//! `--help`: usage, what the program does, and the table of variables.

/// One row of the table: the variable, its default as a reader needs it, its meaning.
pub(super) struct HelpRow {
    pub name: &'static str,
    pub default: String,
    pub meaning: String,
}

/// The whole help text, columns aligned.
pub(super) fn render(rows: &[HelpRow]) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let default_w = rows
        .iter()
        .map(|r| r.default.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "usage: repram-flux [--help|--version]\n\
         \x20 -h, --help     print this help and exit\n\
         \x20 -V, --version  print the version and exit\n\
         \n\
         Runs a whole REPRAM cluster (a replicated, ephemeral, in-memory key/value\n\
         store) in one process: NODE_COUNT nodes each claim a free port in\n\
         BASE_PORT..=BASE_PORT+MAX_PORTS-1, find each other by scanning\n\
         DISCOVERY_DOMAIN over that range (plus DISCOVERY_PEERS and, on Flux, the\n\
         Flux location API), and replicate every write; values expire after their\n\
         TTL. All settings come from the environment; the defaults run a 3-node\n\
         cluster on ports 8081-8083.\n\
         \n\
         Environment:\n",
    );
    out.push_str(&format!(
        "  {:name_w$}  {:default_w$}  MEANING\n",
        "VARIABLE", "DEFAULT"
    ));
    for row in rows {
        let (name, default, meaning) = (row.name, &row.default, &row.meaning);
        out.push_str(&format!(
            "  {name:name_w$}  {default:default_w$}  {meaning}\n"
        ));
    }
    out
}
