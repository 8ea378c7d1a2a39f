//! Listings read page after page. DRS's page tokens are followed, but never one
//! followed already (a DRS that hands out the same token again would be listed
//! for ever), nor more than [`MAX_PAGES`] of them; each page is handed over
//! before the listing says how it ended, so nothing read is lost to a stop.

use std::collections::HashSet;
use std::future::Future;

use crate::domain::aws_error::{AwsError, ErrorKind, ReadStopped};
use crate::domain::deadline::Deadline;
use crate::domain::scope::UnfinishedReason;

/// Pages of one listing followed at most. A staging account holds at most 300
/// servers, and a target account's quota is in the thousands: a listing that
/// keeps handing out tokens past this is answering garbage.
pub const MAX_PAGES: usize = 200;

/// One page of a paginated listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Why a listing ended before its last page.
#[derive(Debug)]
pub enum Stop {
    /// No new work starts: the next page was not asked for.
    Deadline,
    /// The call for a page failed.
    Failed(AwsError),
    /// Its tokens went wrong (`PageTokenRepeated`, `TooManyPages`).
    Short(UnfinishedReason),
}

/// As `coverageUnread` and the quota's count say it.
impl From<Stop> for ReadStopped {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Deadline => Self::Call(ErrorKind::Deadline),
            Stop::Failed(error) => Self::Call(error.kind),
            Stop::Short(reason) => Self::Listing(reason),
        }
    }
}

enum Next<T> {
    /// Read elsewhere (a survey's first page): handed over first.
    Read(Page<T>),
    Ask(Option<String>),
    Stopped(UnfinishedReason),
    Ended,
}

/// Where one listing stands: the next page to ask for, or how it ended.
pub struct Paging<T> {
    next: Next<T>,
    followed: HashSet<String>,
    deadline: Option<Deadline>,
}

/// Every page, past `stop_at` too: for work already under way (a look after a
/// create), which the calls' own cut at `calls_by` bounds.
impl<T> Default for Paging<T> {
    fn default() -> Self {
        Self {
            next: Next::Ask(None),
            followed: HashSet::new(),
            deadline: None,
        }
    }
}

impl<T> Paging<T> {
    /// No page is asked for once the deadline says no new work starts.
    pub fn until(deadline: Deadline) -> Self {
        Self {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    /// Starts from `first`, where it was read already.
    pub fn starting_with(mut self, first: Option<Page<T>>) -> Self {
        if let Some(page) = first {
            self.next = Next::Read(page);
        }
        self
    }

    /// Whether a page token was followed: the listing is more than one page,
    /// and the next page is asked for with a token.
    pub fn followed(&self) -> bool {
        !self.followed.is_empty()
    }

    /// The next page's items, `fetch` asking for the page under a token (`None`:
    /// the first); `None` once the listing ended. After a stop, nothing more.
    pub async fn next<F, Fut>(&mut self, fetch: F) -> Result<Option<Vec<T>>, Stop>
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = Result<Page<T>, AwsError>>,
    {
        let page = match std::mem::replace(&mut self.next, Next::Ended) {
            Next::Ended => return Ok(None),
            Next::Stopped(reason) => return Err(Stop::Short(reason)),
            Next::Read(page) => page,
            Next::Ask(_) if self.deadline.is_some_and(|d| d.reached()) => {
                return Err(Stop::Deadline)
            }
            Next::Ask(token) => fetch(token).await.map_err(Stop::Failed)?,
        };
        self.next = self.follow(page.next_token);
        Ok(Some(page.items))
    }

    fn follow(&mut self, token: Option<String>) -> Next<T> {
        let Some(token) = token else {
            return Next::Ended;
        };
        if self.followed.len() >= MAX_PAGES {
            return Next::Stopped(UnfinishedReason::TooManyPages);
        }
        if !self.followed.insert(token.clone()) {
            return Next::Stopped(UnfinishedReason::PageTokenRepeated);
        }
        Next::Ask(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aws_error::Service;
    use std::time::Duration;

    fn page(items: &[u32], next_token: Option<&str>) -> Page<u32> {
        Page {
            items: items.to_vec(),
            next_token: next_token.map(str::to_owned),
        }
    }

    /// Reads `listing` to its end, each page from `pages` by the token asked.
    async fn read_all(
        listing: &mut Paging<u32>,
        pages: &[(Option<&str>, Page<u32>)],
    ) -> (Vec<u32>, Vec<Option<String>>, Option<Stop>) {
        let (mut items, mut asked) = (Vec::new(), Vec::new());
        loop {
            let fetch = |token: Option<String>| {
                asked.push(token.clone());
                let found = pages.iter().find(|(t, _)| t.map(str::to_owned) == token);
                let answer = found
                    .map(|(_, p)| p.clone())
                    .ok_or_else(|| AwsError::new(Service::Drs, "List", ErrorKind::InvalidResponse));
                async move { answer }
            };
            match listing.next(fetch).await {
                Ok(Some(page)) => items.extend(page),
                Ok(None) => return (items, asked, None),
                Err(stop) => return (items, asked, Some(stop)),
            }
        }
    }

    #[tokio::test]
    async fn every_page_is_handed_over_before_the_listing_says_how_it_ended() {
        let pages = [
            (None, page(&[1, 2], Some("a"))),
            (Some("a"), page(&[3], Some("b"))),
            (Some("b"), page(&[4], None)),
        ];
        let mut listing = Paging::default();
        let (items, asked, stop) = read_all(&mut listing, &pages).await;
        assert_eq!(items, [1, 2, 3, 4]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into())]);
        assert!(stop.is_none() && listing.followed());

        let repeating = [
            (None, page(&[1], Some("a"))),
            (Some("a"), page(&[2], Some("a"))),
        ];
        let (items, _, stop) = read_all(&mut Paging::default(), &repeating).await;
        assert_eq!(items, [1, 2], "the page that repeats a token is kept");
        assert!(matches!(
            stop,
            Some(Stop::Short(UnfinishedReason::PageTokenRepeated))
        ));
    }

    #[tokio::test]
    async fn a_listing_stops_after_its_pages_and_on_a_failed_call() {
        let endless: Vec<_> = (0..=MAX_PAGES + 1)
            .map(|n| {
                let token = (n > 0).then(|| format!("t{n}"));
                (token, page(&[n as u32], Some(&format!("t{}", n + 1))))
            })
            .collect();
        let pages: Vec<_> = endless
            .iter()
            .map(|(t, p)| (t.as_deref(), p.clone()))
            .collect();
        let (items, _, stop) = read_all(&mut Paging::default(), &pages).await;
        assert_eq!(items.len(), MAX_PAGES + 1);
        assert!(matches!(
            stop,
            Some(Stop::Short(UnfinishedReason::TooManyPages))
        ));

        let broken = [(None, page(&[1], Some("a")))];
        let (items, asked, stop) = read_all(&mut Paging::default(), &broken).await;
        assert_eq!((items, asked.len()), (vec![1], 2));
        assert!(matches!(stop, Some(Stop::Failed(_))));
    }

    #[tokio::test]
    async fn a_page_read_elsewhere_comes_first_and_the_deadline_stops_the_asking() {
        let pages = [(Some("a"), page(&[2], None))];
        let mut listing = Paging::default().starting_with(Some(page(&[1], Some("a"))));
        let (items, asked, stop) = read_all(&mut listing, &pages).await;
        assert_eq!((items, asked), (vec![1, 2], vec![Some("a".into())]));
        assert!(stop.is_none());

        let past = Deadline::within(Duration::ZERO, Duration::ZERO);
        let mut listing = Paging::until(past).starting_with(Some(page(&[1], Some("a"))));
        let (items, asked, stop) = read_all(&mut listing, &pages).await;
        assert_eq!(items, [1], "a page already read is not work to start");
        assert!(asked.is_empty());
        assert!(matches!(stop, Some(Stop::Deadline)));
    }
}
