//! `config_table!`: turns the table of variables (`table.rs`) into `Config`, its
//! `Default`, the list of names, the `--help` rows, parsing,
//! per-variable validation and the effective configuration of `/status`.
//!
//! A row: doc comments, `field: Type = "VARIABLE", kind, help "meaning"`, then
//! optionally `shown "default as --help shows it"` (when the kind's own default is not
//! what a reader needs) and `or "FALLBACK" ("default", "meaning")`: a variable read
//! when the first is unset, listed in `--help` after it.

macro_rules! config_table {
    (
        $(#[$struct_meta:meta])*
        pub struct Config {
            $(
                $(#[$meta:meta])*
                $field:ident: $ty:ty = $var:literal, $kind:expr, help $help:expr
                $(, shown $shown:expr)?
                $(, or $alt:literal ($alt_shown:expr, $alt_help:expr))?
                ;
            )*
        }
    ) => {
        $(#[$struct_meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Config {
            $(
                $(#[$meta])*
                pub $field: $ty,
            )*
        }

        impl Default for Config {
            /// Every variable at its default (the same as an empty environment).
            fn default() -> Config {
                Config {
                    $($field: Kind::default_value(&$kind),)*
                }
            }
        }

        /// Every variable read, in `--help` order.
        pub(super) const NAMES: &[&str] = &[$($var, $($alt,)?)*];

        /// The rows of the `--help` table, in [`NAMES`] order.
        pub(super) fn help_rows() -> Vec<HelpRow> {
            let mut rows = Vec::new();
            $(
                rows.push(HelpRow {
                    name: $var,
                    default: config_table!(@shown $kind $(, $shown)?),
                    meaning: ($help).to_string(),
                });
                $(
                    rows.push(HelpRow {
                        name: $alt,
                        default: ($alt_shown).to_string(),
                        meaning: ($alt_help).to_string(),
                    });
                )?
            )*
            rows
        }

        impl Config {
            /// Every variable from `vars`, each checked on its own.
            pub(super) fn parse(vars: &Vars) -> Result<Config, ConfigError> {
                Ok(Config {
                    $($field: vars.read(&$kind, $var, &[$($alt)?])?,)*
                })
            }

            /// The rule of each variable, on a value built by hand.
            pub(super) fn check_each(&self) -> Result<(), ConfigError> {
                $(Kind::check(&$kind, $var, &self.$field)?;)*
                Ok(())
            }

            /// The effective configuration for `/status`: keys are the variable
            /// names, the secret is `"<redacted>"` when set and `null` when not.
            pub fn effective_json(&self) -> Value {
                let mut map = serde_json::Map::new();
                $(map.insert($var.to_string(), Kind::show(&$kind, &self.$field));)*
                Value::Object(map)
            }
        }
    };
    (@shown $kind:expr) => {
        Kind::show_default(&$kind)
    };
    (@shown $kind:expr, $shown:expr) => {
        ($shown).to_string()
    };
}
