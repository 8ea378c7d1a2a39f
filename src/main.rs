use drs_extender::init_error;
use drs_extender::App;
use drs_extender::Clients;
use drs_extender::Config;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let started = std::time::Instant::now();
    drs_extender::logging::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "configuration refused");
            init_error::report("ConfigError", &error.to_string()).await;
            return Err(error.into());
        }
    };
    let clients = Clients::load(&config).await;
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "drs-extender".to_owned());
    let app = App::new(config, clients).with_metrics(function_name, started);
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        app.handle(event)
    }))
    .await
}
