//! EC2 writes of a launch baseline, and the one read it needs: the subnets
//! tagged for `matchSourceIp`, and a new default version of a launch template
//! with the primary network interface's subnet and security groups.
//!
//! EC2's rules, from its model: a new version made with `SourceVersion`
//! "inherits the launch parameters from the source version", and the parameters
//! given "overwrite any corresponding launch parameters inherited"; "If you
//! specify a network interface, you must specify any security groups as part of
//! the network interface" (`RequestLaunchTemplateData.SecurityGroupIds`); and a
//! version with parameters that are not valid is still made, "an error code and
//! an error message are returned for each issue" in its `Warning`. So every
//! interface is sent whole (each of its fields as the source version had it, the
//! primary's subnet and groups changed); a version EC2 warns about is never made
//! the default; and what would make a version that cannot launch (groups on the
//! instance that the interface cannot clear, a private address outside the new
//! subnet) is refused before anything is written.

use aws_sdk_ec2::types::{
    ConnectionTrackingSpecificationRequest, EnaSrdSpecificationRequest,
    EnaSrdUdpSpecificationRequest, Filter, InstanceIpv6AddressRequest,
    Ipv4PrefixSpecificationRequest, Ipv6PrefixSpecificationRequest,
    LaunchTemplateInstanceNetworkInterfaceSpecification as Interface,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest as InterfaceRequest,
    RequestLaunchTemplateData, ResponseLaunchTemplateData,
};

use crate::aws::ec2::{within, TargetEc2};
use crate::aws::sdk_error::SdkCall;
use crate::domain::aws_error::{AwsError, ErrorKind, Service};
use crate::domain::deadline::Deadline;
use crate::domain::launch::cidr_holds;

/// Pages of tagged subnets read at most (1,000 each): a region holds far fewer.
const SUBNET_PAGES: usize = 20;

/// What a template's primary network interface is to say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkChange<'a> {
    pub subnet_id: Option<&'a str>,
    /// The new subnet's IPv4 CIDR, where it was read: an address the interface
    /// keeps must be in it.
    pub subnet_cidr: Option<&'a str>,
    pub security_group_ids: Option<&'a [String]>,
}

/// Why a template was left as it was.
#[derive(Debug)]
pub enum NotSet {
    /// The template, or its default version, does not exist.
    NoTemplate,
    /// The primary interface names a private IPv4 address outside the new subnet.
    PrivateIpOutsideSubnet,
    /// The version has security groups on the instance: with an interface sent
    /// they would be on both, and a version made from a source cannot drop them.
    GroupsOutsideInterface,
    /// EC2 made the version with a warning (its first code); it was not made the default.
    Warned(String),
    Failed(AwsError),
}

impl From<AwsError> for NotSet {
    fn from(error: AwsError) -> Self {
        Self::Failed(error)
    }
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
    /// on the primary network interface, made the default.
    pub async fn set_network(
        &self,
        template_id: &str,
        change: &NetworkChange<'_>,
        deadline: &Deadline,
    ) -> Result<(), NotSet> {
        let cut = |operation| move |()| AwsError::deadline_reached(Service::Ec2, operation);
        let source = self.read_default(template_id, deadline).await?;
        let Some((source, number)) = source.and_then(|v| {
            let number = v.version_number()?;
            Some((v, number))
        }) else {
            return Err(NotSet::NoTemplate);
        };
        let empty = ResponseLaunchTemplateData::builder().build();
        let data = data(source.launch_template_data().unwrap_or(&empty), change)?;
        let create = self
            .client
            .create_launch_template_version()
            .launch_template_id(template_id)
            .source_version(number.to_string())
            .version_description("drs-extender launch baseline")
            .launch_template_data(data)
            .send()
            .map_err_into(Service::Ec2, "CreateLaunchTemplateVersion");
        let created = within(deadline, create)
            .await
            .map_err(cut("CreateLaunchTemplateVersion"))??;
        if let Some(warned) = created
            .warning()
            .and_then(|w| w.errors().first())
            .map(|e| e.code().unwrap_or("ValidationWarning").to_owned())
        {
            return Err(NotSet::Warned(warned));
        }
        let Some(new) = created
            .launch_template_version()
            .and_then(|v| v.version_number())
        else {
            return Err(AwsError::new(
                Service::Ec2,
                "CreateLaunchTemplateVersion",
                ErrorKind::SucceededUnnamed,
            )
            .with_message("CreateLaunchTemplateVersion named no version")
            .into());
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
        Ok(())
    }
}

/// The primary interface: device index 0 on network card 0 (EC2: "The primary
/// network interface must be assigned to network card index 0").
fn is_primary(interface: &Interface) -> bool {
    interface.device_index().unwrap_or(0) == 0 && interface.network_card_index().unwrap_or(0) == 0
}

/// The new version's data: every interface as the source had it, the primary
/// with the change; or, for a template without interfaces and no subnet to
/// set, the instance's own security groups.
fn data(
    source: &ResponseLaunchTemplateData,
    change: &NetworkChange<'_>,
) -> Result<RequestLaunchTemplateData, NotSet> {
    let interfaces = source.network_interfaces();
    let primary = interfaces.iter().find(|i| is_primary(i));
    if primary.is_none() && change.subnet_id.is_none() {
        return Ok(RequestLaunchTemplateData::builder()
            .set_security_group_ids(change.security_group_ids.map(<[String]>::to_vec))
            .build());
    }
    if !source.security_group_ids().is_empty() || !source.security_groups().is_empty() {
        return Err(NotSet::GroupsOutsideInterface);
    }
    if let (Some(primary), Some(subnet), Some(cidr)) =
        (primary, change.subnet_id, change.subnet_cidr)
    {
        let addresses = primary.private_ip_address().into_iter().chain(
            primary
                .private_ip_addresses()
                .iter()
                .filter_map(|a| a.private_ip_address()),
        );
        let moved = primary.subnet_id() != Some(subnet);
        for address in addresses {
            if moved && cidr_holds(cidr, address) == Some(false) {
                return Err(NotSet::PrivateIpOutsideSubnet);
            }
        }
    }
    let mut builder = RequestLaunchTemplateData::builder();
    for interface in interfaces {
        let own = if is_primary(interface) {
            change
        } else {
            &NO_CHANGE
        };
        builder = builder.network_interfaces(request(interface, own));
    }
    if primary.is_none() {
        builder = builder.network_interfaces(request(&Interface::builder().build(), change));
    }
    Ok(builder.build())
}

/// A list as a request field: an empty one is left out (a query request has
/// no way to send one).
fn listed<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

const NO_CHANGE: NetworkChange<'static> = NetworkChange {
    subnet_id: None,
    subnet_cidr: None,
    security_group_ids: None,
};

/// One interface as a request: every field the version had, with the change.
fn request(had: &Interface, change: &NetworkChange<'_>) -> InterfaceRequest {
    let groups = change
        .security_group_ids
        .map_or_else(|| had.groups().to_vec(), <[String]>::to_vec);
    InterfaceRequest::builder()
        .set_associate_carrier_ip_address(had.associate_carrier_ip_address())
        .set_associate_public_ip_address(had.associate_public_ip_address())
        .set_delete_on_termination(had.delete_on_termination())
        .set_description(had.description().map(str::to_owned))
        .device_index(had.device_index().unwrap_or(0))
        .set_groups(listed(groups))
        .set_interface_type(had.interface_type().map(str::to_owned))
        .set_ipv6_address_count(had.ipv6_address_count())
        .set_ipv6_addresses(listed(
            had.ipv6_addresses()
                .iter()
                .map(|a| {
                    InstanceIpv6AddressRequest::builder()
                        .set_ipv6_address(a.ipv6_address().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_network_interface_id(had.network_interface_id().map(str::to_owned))
        .set_private_ip_address(had.private_ip_address().map(str::to_owned))
        .set_private_ip_addresses(listed(had.private_ip_addresses().to_vec()))
        .set_secondary_private_ip_address_count(had.secondary_private_ip_address_count())
        .set_subnet_id(change.subnet_id.or(had.subnet_id()).map(str::to_owned))
        .set_network_card_index(had.network_card_index())
        .set_ipv4_prefixes(listed(
            had.ipv4_prefixes()
                .iter()
                .map(|p| {
                    Ipv4PrefixSpecificationRequest::builder()
                        .set_ipv4_prefix(p.ipv4_prefix().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_ipv4_prefix_count(had.ipv4_prefix_count())
        .set_ipv6_prefixes(listed(
            had.ipv6_prefixes()
                .iter()
                .map(|p| {
                    Ipv6PrefixSpecificationRequest::builder()
                        .set_ipv6_prefix(p.ipv6_prefix().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_ipv6_prefix_count(had.ipv6_prefix_count())
        .set_primary_ipv6(had.primary_ipv6())
        .set_ena_srd_specification(had.ena_srd_specification().map(|e| {
            EnaSrdSpecificationRequest::builder()
                .set_ena_srd_enabled(e.ena_srd_enabled())
                .set_ena_srd_udp_specification(e.ena_srd_udp_specification().map(|u| {
                    EnaSrdUdpSpecificationRequest::builder()
                        .set_ena_srd_udp_enabled(u.ena_srd_udp_enabled())
                        .build()
                }))
                .build()
        }))
        .set_connection_tracking_specification(had.connection_tracking_specification().map(|c| {
            ConnectionTrackingSpecificationRequest::builder()
                .set_tcp_established_timeout(c.tcp_established_timeout())
                .set_udp_stream_timeout(c.udp_stream_timeout())
                .set_udp_timeout(c.udp_timeout())
                .build()
        }))
        .set_ena_queue_count(had.ena_queue_count())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::PrivateIpAddressSpecification;

    fn groups() -> Vec<String> {
        vec!["sg-0a1b2c3d".to_owned()]
    }

    fn with(interfaces: Vec<Interface>) -> ResponseLaunchTemplateData {
        ResponseLaunchTemplateData::builder()
            .set_network_interfaces(Some(interfaces))
            .build()
    }

    #[test]
    fn every_interface_is_sent_whole_the_primary_with_the_change() {
        let had = Interface::builder()
            .device_index(0)
            .subnet_id("subnet-old")
            .groups("sg-old")
            .private_ip_address("10.0.0.9")
            .delete_on_termination(true)
            .ipv6_address_count(1)
            .ena_queue_count(4)
            .build();
        let second = Interface::builder()
            .device_index(1)
            .subnet_id("subnet-two")
            .secondary_private_ip_address_count(2)
            .build();
        let groups = groups();
        let change = NetworkChange {
            subnet_id: Some("subnet-new"),
            subnet_cidr: Some("10.0.0.0/24"),
            security_group_ids: Some(&groups),
        };
        let sent = data(&with(vec![had, second]), &change).unwrap();
        let [primary, other] = sent.network_interfaces() else {
            panic!("two interfaces: {sent:?}");
        };
        assert_eq!(primary.subnet_id(), Some("subnet-new"));
        assert_eq!(primary.groups(), ["sg-0a1b2c3d"]);
        assert_eq!(primary.private_ip_address(), Some("10.0.0.9"));
        assert_eq!(primary.delete_on_termination(), Some(true));
        assert_eq!(primary.ipv6_address_count(), Some(1));
        assert_eq!(primary.ena_queue_count(), Some(4));
        assert_eq!(other.subnet_id(), Some("subnet-two"));
        assert_eq!(other.secondary_private_ip_address_count(), Some(2));
        assert!(sent.security_group_ids().is_empty());
    }

    #[test]
    fn the_primary_is_device_zero_on_card_zero() {
        let on_card_one = Interface::builder()
            .device_index(0)
            .network_card_index(1)
            .subnet_id("subnet-card1")
            .build();
        let primary = Interface::builder()
            .device_index(0)
            .subnet_id("subnet-old")
            .build();
        let change = NetworkChange {
            subnet_id: Some("subnet-new"),
            ..NO_CHANGE
        };
        let sent = data(&with(vec![on_card_one, primary]), &change).unwrap();
        let subnets: Vec<_> = sent
            .network_interfaces()
            .iter()
            .map(|i| i.subnet_id())
            .collect();
        assert_eq!(subnets, [Some("subnet-card1"), Some("subnet-new")]);
    }

    #[test]
    fn groups_alone_on_a_template_without_interfaces_are_the_instances_own() {
        let groups = groups();
        let only_groups = NetworkChange {
            security_group_ids: Some(&groups),
            ..NO_CHANGE
        };
        let sent = data(&with(vec![]), &only_groups).unwrap();
        assert!(sent.network_interfaces().is_empty());
        assert_eq!(sent.security_group_ids(), ["sg-0a1b2c3d"]);
        let with_subnet = NetworkChange {
            subnet_id: Some("subnet-new"),
            ..only_groups
        };
        let sent = data(&with(vec![]), &with_subnet).unwrap();
        assert_eq!(sent.network_interfaces().len(), 1);
        assert_eq!(sent.network_interfaces()[0].device_index(), Some(0));
        assert_eq!(sent.network_interfaces()[0].groups(), ["sg-0a1b2c3d"]);
    }

    #[test]
    fn groups_on_the_instance_are_not_left_beside_an_interface() {
        let source = ResponseLaunchTemplateData::builder()
            .security_group_ids("sg-instance")
            .build();
        let change = NetworkChange {
            subnet_id: Some("subnet-new"),
            ..NO_CHANGE
        };
        assert!(matches!(
            data(&source, &change),
            Err(NotSet::GroupsOutsideInterface)
        ));
    }

    #[test]
    fn an_address_the_new_subnet_cannot_hold_stops_the_change() {
        let had = Interface::builder()
            .device_index(0)
            .subnet_id("subnet-old")
            .private_ip_addresses(
                PrivateIpAddressSpecification::builder()
                    .private_ip_address("10.9.0.7")
                    .build(),
            )
            .build();
        let moved = NetworkChange {
            subnet_id: Some("subnet-new"),
            subnet_cidr: Some("10.0.1.0/24"),
            ..NO_CHANGE
        };
        assert!(matches!(
            data(&with(vec![had.clone()]), &moved),
            Err(NotSet::PrivateIpOutsideSubnet)
        ));
        // Its CIDR unread: EC2's warning and the launch check are left to tell.
        let unread = NetworkChange {
            subnet_cidr: None,
            ..moved
        };
        assert!(data(&with(vec![had]), &unread).is_ok());
    }
}
