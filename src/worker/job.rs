//! The media part of one job, as a worker runs it: probe → route → render.
//!
//! In: a [`Request`] and the worker's [`Setup`]. Out: a [`MediaOutcome`]; `on_probe` is called
//! once the kind and declared duration are known. Never fails and never panics on bad input:
//! every problem is a `Failed` outcome with its code. Blocking and CPU-heavy.

use crate::failure::{ErrorCode, Failure};
use crate::media::{self, Probe};
use crate::profile::{MediaKind, ProfileSet};

use super::{MediaOutcome, Request, Setup};

pub fn run(
    setup: &Setup,
    profiles: &ProfileSet,
    request: &Request,
    on_probe: impl FnOnce(&Probe),
) -> MediaOutcome {
    let probe = match media::probe(&request.input) {
        Ok(p) => p,
        Err(e) => {
            return MediaOutcome::Failed {
                probe: None,
                failure: e.failure(),
            }
        }
    };
    on_probe(&probe);
    if probe.kind == MediaKind::Other {
        return MediaOutcome::NotMedia {
            probe: Box::new(probe),
        };
    }
    let Some(name) = setup.routing.profile_for(probe.kind, &request.tags, profiles) else {
        return MediaOutcome::NotMedia {
            probe: Box::new(probe),
        };
    };
    let Some(profile) = profiles.get(&name) else {
        let failure = Failure::new(
            ErrorCode::NO_PROFILE,
            format!("routing names profile {name:?}, which does not exist"),
        );
        return MediaOutcome::Failed {
            probe: Some(Box::new(probe)),
            failure,
        };
    };
    match media::render(&request.input, &probe, profile, &request.work_dir) {
        Ok(rendition) => MediaOutcome::Rendered {
            probe: Box::new(probe),
            profile: name,
            rendition,
        },
        Err(e) => MediaOutcome::Failed {
            probe: Some(Box::new(probe)),
            failure: e.failure(),
        },
    }
}
