//! The error of the Kafka library: problems that retrying cannot fix. Broker
//! outages are not errors; they are logged, reported and waited out.

use rdkafka::error::KafkaError;

use crate::settings::SettingsError;

/// Why [`crate::run`] (or a [`crate::ChangelogStore`]) could not start or
/// had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[kafka]` settings are invalid or librdkafka refused them.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// librdkafka could not create or set up a client.
    #[error("{what}: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    /// A thread of the pipeline could not be started.
    #[error("spawning the {what} thread: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A partition's checkpoint is unusable and `checkpoint.on_corrupt` is
    /// `"fail"`.
    #[error("unusable checkpoint: {0}")]
    Checkpoint(String),
    /// The changelog checkpoint store could not be set up.
    #[error("changelog store: {0}")]
    Changelog(String),
}

impl Error {
    pub(crate) fn client(what: &'static str) -> impl FnOnce(KafkaError) -> Error {
        move |source| Error::Client { what, source }
    }
}
