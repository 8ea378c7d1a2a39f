use drs_extender::clients::Clients;
use drs_extender::config::Config;
use drs_extender::App;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad value ends the start here; Lambda reports the message as the init error.
    let config = Config::from_env().map_err(|e| {
        lambda_runtime::tracing::error!(error = %e, "configuration refused");
        e
    })?;
    let clients = Clients::load(&config).await;
    let app = App::new(config, clients);
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        app.handle(event)
    }))
    .await
}
