//! The name attributes and alternative names behind AWS IoT's certificate policy variables,
//! read from certificates made by the openssl CLI and by rcgen, and fed through
//! ferrule-policy the way the broker does.

mod common;

use common::openssl::Dir;
use ferrule_pki::{ParsedCertificate, parse_certificate_der, parse_certificate_pem};
use ferrule_policy::{Context, Policy, Request, evaluate};
use rcgen::string::{BmpString, PrintableString, TeletexString, UniversalString};
use rcgen::{CertificateParams, DnType, DnValue, KeyPair, SanType, SerialNumber};

/// The serial AWS's documentation uses for `iot:Certificate.SerialNumber`, and its value there.
const AWS_EXAMPLE_SERIAL: &str = "0x921285cbb7a5e086";
const AWS_EXAMPLE_DECIMAL: &str = "10525622389124227206";

const SUBJECT: &str = "/C=US/ST=WA/L=Seattle/O=Acme/OU=Sensors/OU=Kitchen/CN=device-1\
    /serialNumber=SN-42/dnQualifier=Q1/title=Sensor/SN=Smith/GN=Ann/initials=AS\
    /pseudonym=Pseud/generationQualifier=III/emailAddress=dev@example.com";

/// Alternative names of every kind, interleaved, plus two kinds AWS does not expose.
const EXTENSIONS: &str = "\
[v3]
subjectAltName = @san
issuerAltName = @ian
[san]
DNS.1 = device-1.example.com
IP.1 = 192.0.2.7
DNS.2 = alt.example.com
IP.2 = 2001:db8::1
URI.1 = urn:example:device-1
email.1 = device-1@example.com
dirName.1 = san_dir
otherName.1 = 1.2.3.4;UTF8:not exposed
RID.1 = 1.2.3.4
[san_dir]
C = US
O = Acme
CN = Device Dir
[ian]
DNS.1 = ca.example.com
email.1 = ca@example.com
URI.1 = https://ca.example.com/
IP.1 = 198.51.100.1
dirName.1 = ian_dir
[ian_dir]
CN = Issuer Dir
O = Acme
";

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A CA `ca` (`/C=US/O=Acme Corp/OU=PKI/CN=Acme Root CA`) in `dir`.
fn ca(dir: &Dir) {
    dir.ec_key("ca.key", "prime256v1");
    dir.self_signed(
        "ca.key",
        "ca.pem",
        "/C=US/O=Acme Corp/OU=PKI/CN=Acme Root CA",
        "sha256",
    );
}

/// `device.pem`: a v3 certificate for [`SUBJECT`] with [`EXTENSIONS`] and AWS's example serial.
fn device_with_alt_names(dir: &Dir) -> ParsedCertificate {
    ca(dir);
    dir.ec_key("device.key", "prime256v1");
    dir.csr("device.key", "device.csr", SUBJECT);
    dir.write("ext.cnf", EXTENSIONS);
    dir.sign(
        "device.csr",
        "ca.pem",
        "ca.key",
        "device.pem",
        "sha256",
        &[
            "-set_serial",
            AWS_EXAMPLE_SERIAL,
            "-extfile",
            "ext.cnf",
            "-extensions",
            "v3",
        ],
    );
    parse_certificate_pem(&dir.read("device.pem")).expect("device.pem")
}

#[test]
fn openssl_subject_attributes_in_certificate_order() {
    let dir = Dir::new();
    let cert = device_with_alt_names(&dir);
    assert_eq!(cert.version, 3);
    // Locality and emailAddress have no AWS variable; the two OUs stay in order.
    assert_eq!(
        cert.subject_attributes,
        pairs(&[
            ("Country", "US"),
            ("State", "WA"),
            ("Organization", "Acme"),
            ("OrganizationalUnit", "Sensors"),
            ("OrganizationalUnit", "Kitchen"),
            ("CommonName", "device-1"),
            ("SerialNumber", "SN-42"),
            ("DistinguishedNameQualifier", "Q1"),
            ("Title", "Sensor"),
            ("Surname", "Smith"),
            ("GivenName", "Ann"),
            ("Initials", "AS"),
            ("Pseudonym", "Pseud"),
            ("GenerationQualifier", "III"),
        ])
    );
    assert_eq!(
        cert.issuer_attributes,
        pairs(&[
            ("Country", "US"),
            ("Organization", "Acme Corp"),
            ("OrganizationalUnit", "PKI"),
            ("CommonName", "Acme Root CA"),
        ])
    );
}

#[test]
fn openssl_alternative_names_of_every_kind() {
    let dir = Dir::new();
    let cert = device_with_alt_names(&dir);
    // otherName and registeredID have no AWS variable.
    assert_eq!(
        cert.subject_alt_names,
        pairs(&[
            ("DNSName", "device-1.example.com"),
            ("IPAddress", "192.0.2.7"),
            ("DNSName", "alt.example.com"),
            ("IPAddress", "2001:db8::1"),
            ("UniformResourceIdentifier", "urn:example:device-1"),
            ("RFC822Name", "device-1@example.com"),
            ("DirectoryName", "CN=Device Dir,O=Acme,C=US"),
        ])
    );
    assert_eq!(
        cert.issuer_alt_names,
        pairs(&[
            ("DNSName", "ca.example.com"),
            ("RFC822Name", "ca@example.com"),
            ("UniformResourceIdentifier", "https://ca.example.com/"),
            ("IPAddress", "198.51.100.1"),
            ("DirectoryName", "O=Acme,CN=Issuer Dir"),
        ])
    );
}

#[test]
fn policy_variables_use_aws_names_and_keep_every_value() {
    let dir = Dir::new();
    let cert = device_with_alt_names(&dir);
    assert_eq!(cert.serial_hex, "921285cbb7a5e086");
    assert_eq!(cert.serial_decimal(), AWS_EXAMPLE_DECIMAL);
    let vars = cert.policy_variables();
    let get = |name: &str| -> Vec<&str> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(get("iot:Certificate.Subject.CommonName"), ["device-1"]);
    assert_eq!(
        get("iot:Certificate.Subject.OrganizationalUnit"),
        ["Sensors", "Kitchen"]
    );
    assert_eq!(get("iot:Certificate.Subject.SerialNumber"), ["SN-42"]);
    assert_eq!(get("iot:Certificate.Subject.GenerationQualifier"), ["III"]);
    assert_eq!(get("iot:Certificate.Issuer.Organization"), ["Acme Corp"]);
    assert_eq!(
        get("iot:Certificate.Subject.AlternativeName.DNSName"),
        ["device-1.example.com", "alt.example.com"]
    );
    assert_eq!(
        get("iot:Certificate.Subject.AlternativeName.IPAddress"),
        ["192.0.2.7", "2001:db8::1"]
    );
    assert_eq!(
        get("iot:Certificate.Issuer.AlternativeName.RFC822Name"),
        ["ca@example.com"]
    );
    assert_eq!(
        get("iot:Certificate.Issuer.AlternativeName.DirectoryName"),
        ["O=Acme,CN=Issuer Dir"]
    );
    assert_eq!(get("iot:Certificate.SerialNumber"), [AWS_EXAMPLE_DECIMAL]);
    assert!(get("iot:Certificate.Subject.Locality").is_empty());

    // Each name once; AvailableKeys last, naming every other variable in order.
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let (last, rest) = names.split_last().expect("variables");
    assert_eq!(*last, "iot:Certificate.AvailableKeys");
    assert_eq!(get("iot:Certificate.AvailableKeys"), rest);
    let mut unique = rest.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), rest.len());
    assert_eq!(rest.len(), 13 + 4 + 5 + 5 + 1);
    assert!(rest.iter().all(|n| n.starts_with("iot:Certificate.")));
}

#[test]
fn a_v1_certificate_has_attributes_but_no_alternative_names() {
    let dir = Dir::new();
    ca(&dir);
    dir.rsa_key("v1.key", 2048);
    dir.device_from_key("v1", "/O=Acme/OU=a/OU=b/CN=v1-device", "ca");
    let cert = parse_certificate_pem(&dir.read("v1.pem")).expect("v1.pem");
    assert_eq!(cert.version, 1);
    assert_eq!(
        cert.subject_attributes,
        pairs(&[
            ("Organization", "Acme"),
            ("OrganizationalUnit", "a"),
            ("OrganizationalUnit", "b"),
            ("CommonName", "v1-device"),
        ])
    );
    assert!(cert.subject_alt_names.is_empty());
    assert!(cert.issuer_alt_names.is_empty());
    let vars = cert.policy_variables();
    assert!(
        vars.iter().all(|(n, _)| !n.contains("AlternativeName")),
        "{vars:?}"
    );
    // openssl's -CAcreateserial serials are 20 random bytes.
    assert_eq!(cert.serial_decimal(), reference_decimal(&cert.serial_hex));
}

#[test]
fn a_multi_valued_rdn_gives_each_attribute() {
    let dir = Dir::new();
    ca(&dir);
    dir.ec_key("m.key", "prime256v1");
    dir.openssl(&[
        "req",
        "-new",
        "-key",
        "m.key",
        "-out",
        "m.csr",
        "-multivalue-rdn",
        "-subj",
        "/O=Acme/OU=Lab+CN=multi",
    ]);
    dir.sign("m.csr", "ca.pem", "ca.key", "m.pem", "sha256", &[]);
    let cert = parse_certificate_pem(&dir.read("m.pem")).expect("m.pem");
    assert_eq!(
        cert.subject_attributes[0],
        pairs(&[("Organization", "Acme")])[0]
    );
    let mut rest = cert.subject_attributes[1..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        pairs(&[("CommonName", "multi"), ("OrganizationalUnit", "Lab")])
    );
}

/// A self-signed rcgen certificate with string types of every kind and SANs.
fn rcgen_certificate(cn: &str, serial: Option<&[u8]>) -> ParsedCertificate {
    let mut params = CertificateParams::default();
    let dn = &mut params.distinguished_name;
    dn.push(DnType::CommonName, cn);
    dn.push(
        DnType::OrganizationName,
        DnValue::PrintableString(PrintableString::try_from("Acme").expect("printable")),
    );
    dn.push(DnType::OrganizationalUnitName, "first");
    // rcgen keeps one value per type; the OID as a custom type gives a second OU.
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 11]),
        DnValue::BmpString(BmpString::try_from("zweite Einheit").expect("bmp")),
    );
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 12]),
        DnValue::UniversalString(UniversalString::try_from("Títle").expect("universal")),
    );
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 5]),
        DnValue::TeletexString(TeletexString::try_from("T61-7").expect("teletex")),
    );
    dn.push(DnType::LocalityName, "not exposed");
    params.subject_alt_names = vec![
        SanType::DnsName("rcgen.example.com".try_into().expect("ia5")),
        SanType::IpAddress("10.9.8.7".parse().expect("ip")),
        SanType::IpAddress("fe80::1:2".parse().expect("ip")),
        SanType::URI("https://rcgen.example.com/d".try_into().expect("ia5")),
        SanType::Rfc822Name("r@example.com".try_into().expect("ia5")),
    ];
    params.serial_number = serial.map(SerialNumber::from_slice);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    parse_certificate_der(cert.der()).expect("parses")
}

#[test]
fn rcgen_string_types_and_alternative_names() {
    let cert = rcgen_certificate("rcgen-device", Some(&[0x01]));
    assert_eq!(
        cert.subject_attributes,
        pairs(&[
            ("CommonName", "rcgen-device"),
            ("Organization", "Acme"),
            ("OrganizationalUnit", "first"),
            ("OrganizationalUnit", "zweite Einheit"),
            ("Title", "Títle"),
            ("SerialNumber", "T61-7"),
        ])
    );
    assert_eq!(cert.issuer_attributes, cert.subject_attributes);
    assert_eq!(
        cert.subject_alt_names,
        pairs(&[
            ("DNSName", "rcgen.example.com"),
            ("IPAddress", "10.9.8.7"),
            ("IPAddress", "fe80::1:2"),
            ("UniformResourceIdentifier", "https://rcgen.example.com/d"),
            ("RFC822Name", "r@example.com"),
        ])
    );
    assert!(cert.issuer_alt_names.is_empty());
    assert_eq!(cert.serial_decimal(), "1");
}

#[test]
fn long_serials_in_decimal() {
    let cert = rcgen_certificate("long-serial", Some(&[0x7f; 20]));
    assert_eq!(cert.serial_hex, "7f".repeat(20));
    assert_eq!(cert.serial_decimal(), reference_decimal(&cert.serial_hex));
    assert_eq!(
        cert.serial_decimal(),
        "727885129180488904360266563744972327436484050815"
    );
}

/// Hex to decimal digit by digit, independently of the implementation.
fn reference_decimal(hex: &str) -> String {
    hex.chars().fold(String::from("0"), |acc, c| {
        decimal_mul_add(&acc, 16, c.to_digit(16).expect("hex digit"))
    })
}

/// `acc * m + a` on decimal strings, digit by digit.
fn decimal_mul_add(acc: &str, m: u32, a: u32) -> String {
    let mut carry = a;
    let mut digits: Vec<u32> = Vec::new();
    for d in acc.bytes().rev() {
        let v = u32::from(d - b'0') * m + carry;
        digits.push(v % 10);
        carry = v / 10;
    }
    while carry > 0 {
        digits.push(carry % 10);
        carry /= 10;
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits
        .iter()
        .rev()
        .map(|d| char::from_digit(*d, 10).expect("digit"))
        .collect()
}

#[test]
fn undecodable_values_are_left_out() {
    // A UTF8String holding invalid UTF-8: the certificate still parses (the signature is not
    // checked here), the attribute is just not a variable.
    let cert = rcgen_certificate("bad-X-utf8", None);
    let marker = b"bad-X-utf8";
    let mut der = cert.der.clone();
    let mut patched = 0;
    for i in 0..der.len().saturating_sub(marker.len()) {
        if &der[i..i + marker.len()] == marker {
            der[i + 4] = 0xff;
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "subject and issuer");
    let broken = parse_certificate_der(&der).expect("still parses");
    assert_eq!(broken.common_name, None);
    assert_eq!(broken.subject_attributes, cert.subject_attributes[1..]);
    assert_eq!(broken.issuer_attributes, cert.issuer_attributes[1..]);
    assert!(
        broken.subject.ends_with("CN=#0c0a6261642dff2d75746638"),
        "{}",
        broken.subject
    );
}

/// The context the broker builds for a certificate.
fn context(cert: &ParsedCertificate, client_id: &str) -> Context {
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", client_id);
    for (name, values) in cert.policy_variables() {
        ctx.set_certificate_attribute(&name, &values);
    }
    ctx
}

fn allowed(policy: &str, action: &str, resource: &str, ctx: &Context) -> bool {
    let policy = Policy::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{policy}]}}"#
    ))
    .expect("policy");
    let resource = format!("arn:aws:iot:us-east-1:123456789012:{resource}");
    evaluate(
        [("p", &policy)],
        &Request {
            action,
            resource: &resource,
        },
        ctx,
    )
    .is_allowed()
}

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

#[test]
fn certificate_variables_decide_policies_end_to_end() {
    let dir = Dir::new();
    let cert = device_with_alt_names(&dir);
    let ctx = context(&cert, "device-1");

    // AWS's documented example: client ID is the serial number in decimal, topics under the
    // subject's Organization.
    let documented = format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Certificate.SerialNumber}}"}},
           {{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/${{iot:Certificate.Subject.Organization}}/device-stats/${{iot:ClientId}}/*"}}"#
    );
    let by_serial = context(&cert, AWS_EXAMPLE_DECIMAL);
    assert!(allowed(
        &documented,
        "iot:Connect",
        &format!("client/{AWS_EXAMPLE_DECIMAL}"),
        &by_serial
    ));
    assert!(!allowed(
        &documented,
        "iot:Connect",
        "client/921285cbb7a5e086",
        &by_serial
    ));
    assert!(allowed(
        &documented,
        "iot:Publish",
        "topic/Acme/device-stats/device-1/x",
        &ctx
    ));

    // The second OU by index, every DNS name by .List, the issuer's alternative names.
    let second_ou = format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/${{iot:Certificate.Subject.OrganizationalUnit.1}}/*"}}"#
    );
    assert!(allowed(&second_ou, "iot:Publish", "topic/Kitchen/t", &ctx));
    assert!(!allowed(&second_ou, "iot:Publish", "topic/Sensors/t", &ctx));
    let dns = r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
        "Condition":{"ForAnyValue:StringEquals":{"iot:Certificate.Subject.AlternativeName.DNSName.List":"alt.example.com"},
                     "StringEquals":{"iot:Certificate.Issuer.AlternativeName.IPAddress":"198.51.100.1"},
                     "Null":{"iot:Certificate.Subject.CommonName":"false"}}}"#;
    assert!(allowed(dns, "iot:Connect", "client/device-1", &ctx));
    let keys = r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
        "Condition":{"ForAnyValue:StringEquals":{"iot:Certificate.AvailableKeys.List":"iot:Certificate.Issuer.AlternativeName.DirectoryName"}}}"#;
    assert!(allowed(keys, "iot:Connect", "client/device-1", &ctx));

    // A v1 certificate has no alternative names: a policy that needs one denies.
    ca(&dir);
    dir.rsa_key("v1.key", 2048);
    dir.device_from_key("v1", "/O=Acme/CN=v1-device", "ca");
    let v1 = parse_certificate_pem(&dir.read("v1.pem")).expect("v1.pem");
    let v1_ctx = context(&v1, "v1-device");
    let needs_dns = format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/${{iot:Certificate.Subject.AlternativeName.DNSName}}"}}"#
    );
    assert!(!allowed(&needs_dns, "iot:Publish", "topic/", &v1_ctx));
    assert!(!allowed(keys, "iot:Connect", "client/v1-device", &v1_ctx));
    let cn = format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Certificate.Subject.CommonName}}"}}"#
    );
    assert!(allowed(&cn, "iot:Connect", "client/v1-device", &v1_ctx));
}
