//! `ferrule ca register`: GetRegistrationCode, a verification certificate signed by the CA's
//! key, then RegisterCACertificate, against Ferrule's control plane (or any endpoint speaking
//! AWS IoT's rest-json), as the aws CLI would send them.
//!
//! A deliberately small client: HTTP/1.1 over a plain `TcpStream` (`http://` endpoints only;
//! Ferrule's API listener is plain HTTP), one request per connection, SigV4-signed with
//! `ferrule_api::sigv4::authorization_header`. Credentials and region are found the way the
//! aws CLI finds them (see [`Credentials::find`]), plus `--data-dir` for the file `ferrule
//! serve` generates. AWS errors become `<Code>: <message>`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use clap::Args;
use ferrule_api::sigv4::{SignedRequest, authorization_header, format_amz_date};
use serde_json::{Value, json};

use crate::pki_cmd::{CA_ID_FILE, LoadedCa};

/// The aws CLI's default when no region is configured anywhere.
const DEFAULT_REGION: &str = "us-east-1";
/// The signing name of AWS IoT's control plane.
const SERVICE: &str = "iot";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response accepted; control-plane answers are a few kilobytes.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// `ferrule ca register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// CA directory made by `ferrule ca create` (ca.pem and ca.key); ca-id is written there.
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// The control-plane API, e.g. http://127.0.0.1:8443 (Ferrule's --api-listen address).
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// Register the CA as ACTIVE (otherwise INACTIVE).
    #[arg(long)]
    activate: bool,
    /// Enable auto-registration (JITR) of device certificates it signed.
    #[arg(long)]
    auto_registration: bool,
    /// A Ferrule data dir whose generated `credentials` file ([default] profile) to use.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The region to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long)]
    region: Option<String>,
}

/// Runs `ferrule ca register`.
pub(crate) fn register(args: &RegisterArgs) -> anyhow::Result<()> {
    let ca = LoadedCa::load(&args.ca)?;
    let id_path = args.ca.join(CA_ID_FILE);
    let client = Client {
        endpoint: Endpoint::parse(&args.endpoint)?,
        credentials: Credentials::find(args.data_dir.as_deref(), &Env::from_process())?,
        region: region(args.region.as_deref(), &Env::from_process()),
    };

    let code = client.call("GET", "/registrationcode", None, None)?;
    let code = code["registrationCode"]
        .as_str()
        .filter(|c| !c.is_empty())
        .context("GetRegistrationCode answered without a registrationCode")?
        .to_owned();
    let verification = ca.verification_certificate(&code)?;
    let mut query = Vec::new();
    if args.activate {
        query.push("setAsActive=true");
    }
    if args.auto_registration {
        query.push("allowAutoRegistration=true");
    }
    let query = query.join("&");
    let body = json!({
        "caCertificate": ca.cert_pem,
        "verificationCertificate": verification.cert_pem,
    });
    let out = client.call(
        "POST",
        "/cacertificate",
        (!query.is_empty()).then_some(query.as_str()),
        Some(&body),
    )?;
    let id = out["certificateId"]
        .as_str()
        .context("RegisterCACertificate answered without a certificateId")?;
    let arn = out["certificateArn"].as_str().unwrap_or("(none)");
    // The latest registration's id; registering the same CA with another endpoint updates it.
    std::fs::write(&id_path, format!("{id}\n"))
        .with_context(|| format!("registered, but cannot write {}", id_path.display()))?;
    println!("Registered CA {}", ca.cert.subject);
    println!("  certificate id:    {id}");
    println!("  certificate ARN:   {arn}");
    println!(
        "  status:            {}",
        if args.activate { "ACTIVE" } else { "INACTIVE" }
    );
    println!(
        "  auto-registration: {}",
        if args.auto_registration {
            "ENABLE"
        } else {
            "DISABLE"
        }
    );
    println!("  wrote:             {}", id_path.display());
    Ok(())
}

/// The environment variables credentials and region come from, read once (a seam for tests).
#[derive(Debug, Default, Clone)]
struct Env {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    shared_credentials_file: Option<String>,
    profile: Option<String>,
    home: Option<String>,
    region: Option<String>,
    default_region: Option<String>,
}

impl Env {
    fn from_process() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            shared_credentials_file: var("AWS_SHARED_CREDENTIALS_FILE"),
            profile: var("AWS_PROFILE"),
            home: var("HOME"),
            region: var("AWS_REGION"),
            default_region: var("AWS_DEFAULT_REGION"),
        }
    }
}

/// `--region`, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.
fn region(flag: Option<&str>, env: &Env) -> String {
    flag.map(str::to_owned)
        .or_else(|| env.region.clone())
        .or_else(|| env.default_region.clone())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// An access key, as the aws CLI would use it.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// In order: `--data-dir DIR` (its `credentials` file, [default] profile: an explicit
    /// flag wins, as `--profile` does for the aws CLI); AWS_ACCESS_KEY_ID +
    /// AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); the file AWS_SHARED_CREDENTIALS_FILE
    /// names, else ~/.aws/credentials, profile AWS_PROFILE or default.
    fn find(data_dir: Option<&Path>, env: &Env) -> anyhow::Result<Credentials> {
        if let Some(dir) = data_dir {
            return from_file(&dir.join("credentials"), "default");
        }
        match (&env.access_key_id, &env.secret_access_key) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: env.session_token.clone(),
                });
            }
            (Some(_), None) => bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
            (None, Some(_)) => bail!("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
            (None, None) => {}
        }
        let profile = env.profile.as_deref().unwrap_or("default");
        if let Some(file) = &env.shared_credentials_file {
            return from_file(Path::new(file), profile);
        }
        let Some(home) = &env.home else {
            bail!(no_credentials());
        };
        let file = Path::new(home).join(".aws").join("credentials");
        if !file.try_exists().unwrap_or(false) {
            bail!(no_credentials());
        }
        from_file(&file, profile)
    }
}

fn no_credentials() -> String {
    "no credentials found: pass --data-dir DIR (the data dir of `ferrule serve`, which holds \
     the generated credentials file), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
     AWS_SHARED_CREDENTIALS_FILE"
        .to_owned()
}

fn from_file(path: &Path, profile: &str) -> anyhow::Result<Credentials> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the credentials file {} does not exist (`ferrule serve --data-dir DIR` writes \
             DIR/credentials on its first start)",
            path.display()
        ),
        Err(e) => bail!("cannot read the credentials file {}: {e}", path.display()),
    };
    parse_profile(&text, profile).with_context(|| {
        format!(
            "the credentials file {} has no [{profile}] profile with aws_access_key_id and \
             aws_secret_access_key",
            path.display()
        )
    })
}

/// The keys of `[profile]` in an AWS shared-credentials (INI) file.
fn parse_profile(text: &str, profile: &str) -> Option<Credentials> {
    let mut inside = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
            continue;
        }
        if let (true, Some((key, value))) = (inside, line.split_once('=')) {
            let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
            match key.trim() {
                "aws_access_key_id" => id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// An `http://HOST[:PORT][/]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    url: String,
    /// `HOST[:PORT]` as written: the Host header.
    authority: String,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Endpoint> {
        if url.starts_with("https://") {
            bail!(
                "the endpoint {url} uses https, which `ferrule ca register` does not speak; \
                 use Ferrule's plain-HTTP API listener (http://ADDR, the --api-listen address)"
            );
        }
        let rest = url.strip_prefix("http://").with_context(|| {
            format!("the endpoint {url:?} is not an http:// URL (expected http://HOST:PORT)")
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            bail!("the endpoint {url:?} must be http://HOST[:PORT], without a path or query");
        }
        let bad_port = || format!("the endpoint {url:?} has an invalid port");
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .with_context(|| format!("the endpoint {url:?} has an unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, port.parse().with_context(bad_port)?),
                None if after.is_empty() => (host, 80),
                None => bail!(bad_port()),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, port.parse().with_context(bad_port)?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            bail!("the endpoint {url:?} has no host");
        }
        Ok(Endpoint {
            url: url.to_owned(),
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

/// An error the service returned: `Code: message`.
#[derive(Debug)]
struct AwsError {
    code: String,
    message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}

/// A signed client of the control plane: AWS IoT's rest-json (`ferrule ca register`,
/// `ferrule status`), and for `ferrule demo` also Lambda's rest-json and IAM's query protocol.
#[derive(Clone)]
pub(crate) struct Client {
    endpoint: Endpoint,
    credentials: Credentials,
    region: String,
}

impl Client {
    /// A client of the API at `endpoint` (`http://HOST:PORT`), with credentials and region
    /// found as `ferrule ca register` finds them (`data_dir`'s credentials file first).
    pub(crate) fn new(
        endpoint: &str,
        data_dir: Option<&Path>,
        region_flag: Option<&str>,
    ) -> anyhow::Result<Client> {
        let env = Env::from_process();
        Ok(Client {
            endpoint: Endpoint::parse(endpoint)?,
            credentials: Credentials::find(data_dir, &env)?,
            region: region(region_flag, &env),
        })
    }

    /// An AWS IoT rest-json call: see [`Client::call_json`].
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.call_json(SERVICE, method, path, query, body)
    }

    /// Sends one signed rest-json request to `service` (its signing name: `iot`, `lambda`)
    /// and returns the JSON answer (`Null` when empty), or the service's error as an
    /// [`AwsError`].
    pub(crate) fn call_json(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let content_type = (!body.is_empty()).then_some("application/json");
        let response = self.send(
            service,
            method,
            path,
            query,
            content_type,
            body.into_bytes(),
        )?;
        if (200..300).contains(&response.status) {
            if response.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&response.body).with_context(|| {
                format!(
                    "{} answered {} with a body that is not JSON",
                    self.endpoint.url, response.status
                )
            });
        }
        Err(response.error().into())
    }

    /// Sends one signed query-protocol request (`POST /`, a form body such as
    /// `Action=CreateRole&Version=2010-05-08&...`, already encoded) to `service` (`iam`) and
    /// returns the XML answer, or the service's error as an [`AwsError`].
    pub(crate) fn call_query(&self, service: &str, form: &str) -> anyhow::Result<String> {
        let response = self.send(
            service,
            "POST",
            "/",
            None,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            form.as_bytes().to_vec(),
        )?;
        if (200..300).contains(&response.status) {
            return Ok(String::from_utf8_lossy(&response.body).into_owned());
        }
        Err(response.error().into())
    }

    /// Sends one signed request and reads the whole response.
    fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Response> {
        let amz_date = format_amz_date(unix_now());
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| -> anyhow::Result<()> {
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("the {name} header value {value:?} is not valid"))?;
            headers.insert(HeaderName::from_static(name), value);
            Ok(())
        };
        set("host", &self.endpoint.authority)?;
        set("x-amz-date", &amz_date)?;
        let mut signed = vec!["host", "x-amz-date"];
        if let Some(content_type) = content_type {
            set("content-type", content_type)?;
            signed.push("content-type");
        }
        if let Some(token) = &self.credentials.session_token {
            set("x-amz-security-token", token)?;
            signed.push("x-amz-security-token");
        }
        let authorization = authorization_header(
            &SignedRequest {
                method,
                raw_path: path,
                raw_query: query,
                headers: &headers,
                body: &body,
            },
            &signed,
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            &self.region,
            service,
            &amz_date,
        );

        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let mut request = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in &headers {
            request.push_str(name.as_str());
            request.push_str(": ");
            request.push_str(value.to_str().unwrap_or_default());
            request.push_str("\r\n");
        }
        request.push_str(&format!(
            "authorization: {authorization}\r\ncontent-length: {}\r\naccept: \
             application/json\r\nuser-agent: ferrule/{}\r\nconnection: close\r\n\r\n",
            body.len(),
            env!("CARGO_PKG_VERSION")
        ));
        let mut raw = request.into_bytes();
        raw.extend_from_slice(&body);

        let response = self.exchange(&raw)?;
        Response::parse(&response).with_context(|| {
            format!(
                "{} answered with a malformed HTTP response",
                self.endpoint.url
            )
        })
    }

    fn exchange(&self, request: &[u8]) -> anyhow::Result<Vec<u8>> {
        let url = &self.endpoint.url;
        let unreachable = |e: &dyn fmt::Display| {
            anyhow::anyhow!(
                "cannot reach the API at {url}: {e} (is `ferrule serve` running, and is this its \
                 --api-listen address?)"
            )
        };
        let addrs: Vec<_> = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(&e))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            return Err(match last {
                Some(e) => unreachable(&e),
                None => unreachable(&"the host name has no address"),
            });
        };
        let io = |e: std::io::Error| anyhow::anyhow!("talking to the API at {url} failed: {e}");
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.write_all(request).map_err(io)?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut response)
            .map_err(io)?;
        Ok(response)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An HTTP/1.1 response read to the end of the connection.
struct Response {
    status: u16,
    error_type: Option<String>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> anyhow::Result<Response> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("the connection closed before the end of the response headers")?;
        let head = std::str::from_utf8(&raw[..end]).context("the headers are not text")?;
        let rest = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|s| s.get(2..5))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut error_type) = (None, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "x-amzn-errortype" => error_type = Some(value.to_owned()),
                _ => {}
            }
        }
        let body = if chunked {
            dechunk(rest)?
        } else if let Some(n) = length {
            rest.get(..n)
                .context("the connection closed before the end of the body")?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Response {
            status,
            error_type,
            body,
        })
    }

    /// The service's error: the code from `x-amzn-ErrorType` or the body's `__type`/`code`
    /// (either may carry a `:...` or `#` decoration, as botocore strips), the message from
    /// `message`/`Message`.
    fn error(&self) -> AwsError {
        let json: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        // The query protocol (IAM) answers `<ErrorResponse><Error><Code>..<Message>..`.
        let text = String::from_utf8_lossy(&self.body);
        let xml = |tag: &str| xml_text(&text, tag).map(str::to_owned);
        let code = self
            .error_type
            .clone()
            .or_else(|| json["__type"].as_str().map(str::to_owned))
            .or_else(|| json["code"].as_str().map(str::to_owned))
            .or_else(|| xml("Code"))
            .map(|c| {
                let c = c.split(':').next().unwrap_or_default();
                c.rsplit('#').next().unwrap_or_default().to_owned()
            })
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| format!("HTTP {}", self.status));
        let message = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .map(str::to_owned)
            .or_else(|| xml("Message"))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&self.body);
                let text = text.trim();
                if text.is_empty() {
                    format!(
                        "the service answered HTTP {} without a message",
                        self.status
                    )
                } else {
                    text.chars().take(300).collect()
                }
            });
        AwsError { code, message }
    }
}

/// The text of the first `<tag>...</tag>` in `xml`, as written (query-protocol answers carry
/// no entities in the ARNs, codes and messages read from them).
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a truncated chunk size line")?;
        let size_text = std::str::from_utf8(&raw[..end]).context("a chunk size is not text")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).context("a truncated chunk")?);
        raw = raw.get(size + 2..).context("a truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn endpoints_are_http_host_and_port() {
        let e = Endpoint::parse("http://127.0.0.1:8443/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8443));
        assert_eq!(e.authority, "127.0.0.1:8443");
        let e = Endpoint::parse("http://localhost").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 80));
        let e = Endpoint::parse("http://[::1]:9").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        let https = Endpoint::parse("https://example.com").unwrap_err();
        assert!(https.to_string().contains("https"), "{https}");
        for bad in ["127.0.0.1:80", "http://", "http://h:x", "http://h/path"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_found_as_the_aws_cli_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n\n[p]\n\
             aws_access_key_id=AKP\naws_secret_access_key=SP\naws_session_token=T\n",
        )
        .unwrap();
        let mut env = Env {
            access_key_id: Some("AKE".into()),
            secret_access_key: Some("SE".into()),
            shared_credentials_file: Some(file.display().to_string()),
            ..Env::default()
        };
        assert_eq!(Credentials::find(None, &env).unwrap().access_key_id, "AKE");
        assert_eq!(
            Credentials::find(Some(dir.path()), &env)
                .unwrap()
                .access_key_id,
            "AKD"
        );
        env.access_key_id = None;
        let err = Credentials::find(None, &env).unwrap_err().to_string();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        env.secret_access_key = None;
        assert_eq!(Credentials::find(None, &env).unwrap().access_key_id, "AKD");
        env.profile = Some("p".into());
        let p = Credentials::find(None, &env).unwrap();
        assert_eq!(p.session_token.as_deref(), Some("T"));
        env.profile = Some("missing".into());
        let err = format!("{:#}", Credentials::find(None, &env).unwrap_err());
        assert!(err.contains("[missing]"), "{err}");
        let none = Credentials::find(None, &Env::default()).unwrap_err();
        assert!(none.to_string().contains("no credentials"), "{none}");
    }

    #[test]
    fn region_flag_then_environment_then_default() {
        let mut env = Env::default();
        assert_eq!(region(None, &env), "us-east-1");
        env.default_region = Some("eu-west-1".into());
        assert_eq!(region(None, &env), "eu-west-1");
        env.region = Some("eu-north-1".into());
        assert_eq!(region(None, &env), "eu-north-1");
        assert_eq!(region(Some("ap-south-1"), &env), "ap-south-1");
    }

    #[test]
    fn responses_and_errors_parse() {
        let ok = Response::parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"{}"[..]));
        let chunked = Response::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, b"{\"a\":1}");
        let err = Response::parse(
            b"HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: UnrecognizedClientException:http://x/\r\n\r\n{\"message\":\"bad\"}",
        )
        .unwrap()
        .error();
        assert_eq!(err.to_string(), "UnrecognizedClientException: bad");
        let err =
            Response::parse(b"HTTP/1.1 400 Bad\r\n\r\n{\"__type\":\"ns#Thing\",\"Message\":\"m\"}")
                .unwrap()
                .error();
        assert_eq!(err.to_string(), "Thing: m");
        let err = Response::parse(
            b"HTTP/1.1 409 Conflict\r\n\r\n<ErrorResponse><Error><Type>Sender</Type>\
              <Code>EntityAlreadyExists</Code><Message>Role r exists.</Message></Error></ErrorResponse>",
        )
        .unwrap()
        .error();
        assert_eq!(err.to_string(), "EntityAlreadyExists: Role r exists.");
        assert_eq!(xml_text("<R><Arn>x:y</Arn></R>", "Arn"), Some("x:y"));
        assert_eq!(xml_text("<R></R>", "Arn"), None);
        let err = Response::parse(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            .unwrap()
            .error();
        assert!(err.to_string().starts_with("HTTP 502: "), "{err}");
        assert!(Response::parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
