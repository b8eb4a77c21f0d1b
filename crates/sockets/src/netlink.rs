//! The netlink operations officebox uses on the host's interfaces, addresses and routes,
//! written once for the network setup (officebox-net's `manage`) and the WAN DHCP client
//! (officebox-dhcp). It lives here, below the services, because two services use it.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

fn nl(e: rtnetlink::Error) -> io::Error {
    io::Error::other(format!("netlink: {e}"))
}

/// A netlink connection; its background task ends when this is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// Opens a connection to the kernel (this network namespace's).
    pub fn open() -> io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Netlink {
            handle,
            task: tokio::spawn(connection),
        })
    }

    /// The index of the interface called `name`.
    pub async fn link_index(&self, name: &str) -> io::Result<u32> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(io::Error::other(format!("no interface {name}"))),
            Err(e) => Err(io::Error::other(format!("interface {name}: {e}"))),
        }
    }

    /// Sets the interface called `name` up or down; returns its index.
    pub async fn set_link(&self, name: &str, up: bool) -> io::Result<u32> {
        let index = self.link_index(name).await?;
        let change = LinkUnspec::new_with_index(index);
        let change = if up { change.up() } else { change.down() };
        self.handle
            .link()
            .set(change.build())
            .execute()
            .await
            .map_err(nl)?;
        Ok(index)
    }

    /// The IPv4 addresses on interface `index`: (address, prefix, message for deleting).
    pub async fn ipv4_addresses(
        &self,
        index: u32,
    ) -> io::Result<Vec<(Ipv4Addr, u8, AddressMessage)>> {
        let mut out = Vec::new();
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(a) = addrs.try_next().await.map_err(nl)? {
            let ip = a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = ip {
                out.push((ip, a.header.prefix_len, a));
            }
        }
        Ok(out)
    }

    /// Adds (or refreshes) `address`/`prefix` on interface `index`, leaving others there.
    pub async fn put_address(&self, index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(address), prefix)
            .replace()
            .execute()
            .await
            .map_err(nl)
    }

    /// Removes an address found by [`Netlink::ipv4_addresses`].
    pub async fn delete_address(&self, address: AddressMessage) -> io::Result<()> {
        self.handle
            .address()
            .del(address)
            .execute()
            .await
            .map_err(nl)
    }

    /// Sets the main table's IPv4 default route through `gateway` (replacing one there).
    pub async fn put_default_route(&self, gateway: Ipv4Addr) -> io::Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(nl)
    }

    /// The main table's IPv4 default routes: (gateway, output interface, message for
    /// deleting).
    pub async fn default_routes(
        &self,
    ) -> io::Result<Vec<(Option<Ipv4Addr>, Option<u32>, RouteMessage)>> {
        let mut out = Vec::new();
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(r) = routes.try_next().await.map_err(nl)? {
            if r.header.destination_prefix_length != 0
                || r.header.table != RouteHeader::RT_TABLE_MAIN
            {
                continue;
            }
            let gateway = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            out.push((gateway, oif, r));
        }
        Ok(out)
    }

    /// Sets the MTU of interface `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> io::Result<()> {
        let change = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle.link().set(change).execute().await.map_err(nl)
    }

    /// Routes `network`/`prefix` out of interface `index` (replacing a route to it); the
    /// box's own packets there come from `source` when given.
    pub async fn put_route_from(
        &self,
        network: Ipv4Addr,
        prefix: u8,
        index: u32,
        source: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(network, prefix)
            .output_interface(index);
        if let Some(src) = source {
            route = route.pref_source(src);
        }
        let route = route.build();
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(nl)
    }

    /// Removes a route found by [`Netlink::default_routes`].
    pub async fn delete_route(&self, route: RouteMessage) -> io::Result<()> {
        self.handle.route().del(route).execute().await.map_err(nl)
    }
}
