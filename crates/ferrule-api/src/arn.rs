//! AWS IoT ARNs for the configured region and account, and recognising them in requests.

/// Makes and reads the ARNs of one region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arns {
    partition: &'static str,
    region: String,
    account: String,
}

/// The resource an ARN names, when it is one the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `cert/{id}`
    Certificate(String),
    /// `cacert/{id}`
    CaCertificate(String),
    /// `policy/{name}`
    Policy(String),
    /// `thing/{name}`
    Thing(String),
    /// `rule/{name}`
    Rule(String),
}

impl Arns {
    pub(crate) fn new(region: &str, account: &str) -> Arns {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Arns {
            partition,
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    fn arn(&self, resource: &str, id: &str) -> String {
        format!(
            "arn:{}:iot:{}:{}:{resource}/{id}",
            self.partition, self.region, self.account
        )
    }

    pub(crate) fn certificate(&self, id: &str) -> String {
        self.arn("cert", id)
    }

    pub(crate) fn ca_certificate(&self, id: &str) -> String {
        self.arn("cacert", id)
    }

    pub(crate) fn policy(&self, name: &str) -> String {
        self.arn("policy", name)
    }

    pub(crate) fn thing(&self, name: &str) -> String {
        self.arn("thing", name)
    }

    pub(crate) fn rule(&self, name: &str) -> String {
        self.arn("rule", name)
    }

    /// The resource `arn` names if it is an IoT ARN of this region and account for a
    /// certificate, CA certificate, policy, thing or topic rule; `None` for anything else.
    pub(crate) fn parse(&self, arn: &str) -> Option<Resource> {
        let rest = arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let (partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if partition != self.partition
            || service != "iot"
            || region != self.region
            || account != self.account
        {
            return None;
        }
        let (kind, id) = resource.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        let id = id.to_owned();
        Some(match kind {
            "cert" => Resource::Certificate(id),
            "cacert" => Resource::CaCertificate(id),
            "policy" => Resource::Policy(id),
            "thing" => Resource::Thing(id),
            "rule" => Resource::Rule(id),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let a = Arns::new("us-east-1", "123456789012");
        let cert = a.certificate("ab");
        assert_eq!(cert, "arn:aws:iot:us-east-1:123456789012:cert/ab");
        assert_eq!(a.parse(&cert), Some(Resource::Certificate("ab".into())));
        assert_eq!(
            a.parse(&a.ca_certificate("cd")),
            Some(Resource::CaCertificate("cd".into()))
        );
        assert_eq!(a.parse(&a.policy("p")), Some(Resource::Policy("p".into())));
        assert_eq!(
            a.parse(&a.thing("t:x")),
            Some(Resource::Thing("t:x".into()))
        );
        assert_eq!(a.parse("arn:aws:iot:eu-west-1:123456789012:cert/ab"), None);
        assert_eq!(a.parse(&a.rule("r_1")), Some(Resource::Rule("r_1".into())));
        assert_eq!(a.rule("r"), "arn:aws:iot:us-east-1:123456789012:rule/r");
        assert_eq!(
            a.parse("arn:aws:iot:us-east-1:123456789012:rolealias/r"),
            None
        );
        assert_eq!(a.parse("us-east-1:0000-1111"), None);
        assert_eq!(
            Arns::new("cn-north-1", "1").policy("p"),
            "arn:aws-cn:iot:cn-north-1:1:policy/p"
        );
    }
}
