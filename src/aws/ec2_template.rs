//! EC2 writes of a launch baseline, and the one read it needs: the subnets
//! tagged for `matchSourceIp`, and a new default version of a launch template
//! with the primary network interface's subnet and security groups.
//!
//! EC2's rules, from the API reference: a new version made with `SourceVersion`
//! "inherits the launch parameters from the source version", and the parameters
//! given "overwrite any corresponding launch parameters inherited"; and "If you
//! specify a network interface, you must specify any security groups as part of
//! the network interface" (`RequestLaunchTemplateData.SecurityGroupIds`). So
//! the interface at device index 0 is sent whole (what the source version had,
//! with the subnet and groups changed), and groups go on it; only a template
//! without interfaces whose baseline names no subnet gets `SecurityGroupIds`.

use aws_sdk_ec2::types::{
    Filter, LaunchTemplateInstanceNetworkInterfaceSpecification as Interface,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest as InterfaceRequest,
    RequestLaunchTemplateData,
};

use crate::aws::ec2::{within, TargetEc2};
use crate::aws::sdk_error::SdkCall;
use crate::domain::aws_error::{AwsError, ErrorKind, Service};
use crate::domain::deadline::Deadline;

/// Pages of tagged subnets read at most (1,000 each): a region holds far fewer.
const SUBNET_PAGES: usize = 20;

/// What a template's primary network interface is to say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkChange<'a> {
    pub subnet_id: Option<&'a str>,
    pub security_group_ids: Option<&'a [String]>,
}

impl TargetEc2 {
    /// Every subnet carrying `tag_key` (any value): `(id, IPv4 CIDR)`; subnets
    /// without an IPv4 CIDR are left out, as they can hold no IPv4 address.
    pub async fn subnets_tagged(
        &self,
        tag_key: &str,
        deadline: &Deadline,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let mut found = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..SUBNET_PAGES {
            let call = self
                .client
                .describe_subnets()
                .filters(Filter::builder().name("tag-key").values(tag_key).build())
                .max_results(1_000)
                .set_next_token(next_token.clone())
                .send()
                .map_err_into(Service::Ec2, "DescribeSubnets");
            let output = within(deadline, call)
                .await
                .map_err(|()| AwsError::deadline_reached(Service::Ec2, "DescribeSubnets"))??;
            found.extend(
                output
                    .subnets()
                    .iter()
                    .filter_map(|s| Some((s.subnet_id()?.to_owned(), s.cidr_block()?.to_owned()))),
            );
            match output.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next_token = Some(token.to_owned()),
                None => return Ok(found),
            }
        }
        Err(
            AwsError::new(Service::Ec2, "DescribeSubnets", ErrorKind::InvalidResponse)
                .with_message("DescribeSubnets paged on past its bound"),
        )
    }

    /// A new version of the template from its default version, with `change`
    /// on the primary network interface, made the default. `Ok(false)`: the
    /// template or its default version does not exist.
    pub async fn set_network(
        &self,
        template_id: &str,
        change: &NetworkChange<'_>,
        deadline: &Deadline,
    ) -> Result<bool, AwsError> {
        let cut = |operation| move |()| AwsError::deadline_reached(Service::Ec2, operation);
        let read = self
            .client
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .versions("$Default")
            .send()
            .map_err_into(Service::Ec2, "DescribeLaunchTemplateVersions");
        let source = match within(deadline, read)
            .await
            .map_err(cut("DescribeLaunchTemplateVersions"))?
        {
            Ok(output) => output.launch_template_versions().first().cloned(),
            Err(error) if crate::aws::ec2::is_template_not_found(&error) => None,
            Err(error) => return Err(error),
        };
        let Some((source, number)) = source.and_then(|v| {
            let number = v.version_number()?;
            Some((v, number))
        }) else {
            return Ok(false);
        };
        let interfaces = source
            .launch_template_data()
            .map(|d| d.network_interfaces())
            .unwrap_or_default();
        let create = self
            .client
            .create_launch_template_version()
            .launch_template_id(template_id)
            .source_version(number.to_string())
            .version_description("drs-extender launch baseline")
            .launch_template_data(data(interfaces, change))
            .send()
            .map_err_into(Service::Ec2, "CreateLaunchTemplateVersion");
        let created = within(deadline, create)
            .await
            .map_err(cut("CreateLaunchTemplateVersion"))??;
        let Some(new) = created
            .launch_template_version()
            .and_then(|v| v.version_number())
        else {
            return Err(AwsError::new(
                Service::Ec2,
                "CreateLaunchTemplateVersion",
                ErrorKind::SucceededUnnamed,
            )
            .with_message("CreateLaunchTemplateVersion named no version"));
        };
        let modify = self
            .client
            .modify_launch_template()
            .launch_template_id(template_id)
            .default_version(new.to_string())
            .send()
            .map_err_into(Service::Ec2, "ModifyLaunchTemplate");
        within(deadline, modify)
            .await
            .map_err(cut("ModifyLaunchTemplate"))??;
        Ok(true)
    }
}

/// The new version's data: the primary interface as the source had it, with
/// the change; or, for a template without interfaces and no subnet to set,
/// the template's own security groups.
fn data(interfaces: &[Interface], change: &NetworkChange<'_>) -> RequestLaunchTemplateData {
    let primary = interfaces
        .iter()
        .find(|i| i.device_index().unwrap_or(0) == 0);
    if primary.is_none() && change.subnet_id.is_none() {
        return RequestLaunchTemplateData::builder()
            .set_security_group_ids(change.security_group_ids.map(<[String]>::to_vec))
            .build();
    }
    let mut builder = RequestLaunchTemplateData::builder();
    for interface in interfaces {
        let is_primary = interface.device_index().unwrap_or(0) == 0;
        builder = builder.network_interfaces(request(
            interface,
            if is_primary { change } else { &NO_CHANGE },
        ));
    }
    if primary.is_none() {
        builder = builder.network_interfaces(request(&Interface::builder().build(), change));
    }
    builder.build()
}

const NO_CHANGE: NetworkChange<'static> = NetworkChange {
    subnet_id: None,
    security_group_ids: None,
};

/// One interface as a request: what the version had, with the change.
fn request(had: &Interface, change: &NetworkChange<'_>) -> InterfaceRequest {
    let groups = change
        .security_group_ids
        .map_or_else(|| had.groups().to_vec(), <[String]>::to_vec);
    InterfaceRequest::builder()
        .device_index(had.device_index().unwrap_or(0))
        .set_network_card_index(had.network_card_index())
        .set_subnet_id(change.subnet_id.or(had.subnet_id()).map(str::to_owned))
        .set_groups((!groups.is_empty()).then_some(groups))
        .set_private_ip_address(had.private_ip_address().map(str::to_owned))
        .set_associate_public_ip_address(had.associate_public_ip_address())
        .set_delete_on_termination(had.delete_on_termination())
        .set_description(had.description().map(str::to_owned))
        .set_interface_type(had.interface_type().map(str::to_owned))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<String> {
        vec!["sg-0a1b2c3d".to_owned()]
    }

    #[test]
    fn the_primary_interface_is_sent_whole_with_the_change() {
        let had = Interface::builder()
            .device_index(0)
            .subnet_id("subnet-old")
            .groups("sg-old")
            .private_ip_address("10.0.0.9")
            .delete_on_termination(true)
            .build();
        let second = Interface::builder()
            .device_index(1)
            .subnet_id("subnet-two")
            .build();
        let groups = groups();
        let change = NetworkChange {
            subnet_id: Some("subnet-new"),
            security_group_ids: Some(&groups),
        };
        let sent = data(&[had, second], &change);
        let [primary, other] = sent.network_interfaces() else {
            panic!("two interfaces: {sent:?}");
        };
        assert_eq!(primary.subnet_id(), Some("subnet-new"));
        assert_eq!(primary.groups(), ["sg-0a1b2c3d"]);
        assert_eq!(primary.private_ip_address(), Some("10.0.0.9"));
        assert_eq!(primary.delete_on_termination(), Some(true));
        assert_eq!(other.subnet_id(), Some("subnet-two"));
        assert!(sent.security_group_ids().is_empty());
    }

    #[test]
    fn groups_alone_on_a_template_without_interfaces_are_the_templates_own() {
        let groups = groups();
        let only_groups = NetworkChange {
            subnet_id: None,
            security_group_ids: Some(&groups),
        };
        let sent = data(&[], &only_groups);
        assert!(sent.network_interfaces().is_empty());
        assert_eq!(sent.security_group_ids(), ["sg-0a1b2c3d"]);
        let with_subnet = NetworkChange {
            subnet_id: Some("subnet-new"),
            ..only_groups
        };
        let sent = data(&[], &with_subnet);
        assert_eq!(sent.network_interfaces().len(), 1);
        assert_eq!(sent.network_interfaces()[0].device_index(), Some(0));
        assert_eq!(sent.network_interfaces()[0].groups(), ["sg-0a1b2c3d"]);
    }
}
