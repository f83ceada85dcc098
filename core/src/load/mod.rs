//! The loader: [`Model::load`] parses and validates a blob once, and the plan it produces is trusted from then on.
//!
//! The checks go in the order of the bytes: the header and CRC here, each layer entry against the layers before
//! it in `layer` (kind, inputs, geometry, shape, quantization, sections), the weight sections format by format in
//! `weights`, the feature-spec section (version 5) in `feature_spec`, the metadata block in `metadata` (and its
//! feature names against the spec); then `plan::arena` places the tensors.
//! After `Model::load` returns `Ok`, running the model has no error path: the plans hold the byte slices and
//! arena offsets the kernels need, so nothing is recomputed or re-checked per inference.
//! `docs/BLOB.md` lists every check.

#[cfg(any(feature = "stream", feature = "alloc"))]
pub(crate) mod feature_spec;
mod layer;
pub(crate) mod metadata;
mod weights;

use heapless::Vec;

use crate::error::{BlobError, BlobErrorKind, clamp_offset};
use crate::format::{self, ENTRY_LEN, Entry, HEADER_LEN, Header, LayerKind};
use crate::kernels::Engine;
use crate::model::Model;
use crate::plan::arena;
use crate::{MAX_CLASSES, MAX_LAYERS};
use metadata::Metadata;

impl<'b> Model<'b> {
    /// Parses and validates a blob, and plans the arena.
    ///
    /// # Errors
    ///
    /// Returns a [`BlobError`] naming the layer and byte offset of the first problem found; see `docs/BLOB.md`
    /// for the list of checks.
    ///
    /// The model is built in a local and moved into the result, so this needs about twice
    /// `size_of::<Model>()` of stack (the layer table holds [`MAX_LAYERS`] plans); where that matters, use
    /// [`Model::load_into`].
    pub fn load(blob: &'b [u8]) -> Result<Self, BlobError> {
        let mut model = Model::empty(blob);
        model.fill()?;
        Ok(model)
    }

    /// Like [`Model::load`], but builds the model in place, in `slot`, and returns a reference to it: the
    /// loader's stack then holds no copy of the `Model`, which a 16 KB microcontroller needs
    /// (docs/FIRMWARE.md).
    ///
    /// On success `slot` holds the model; on error it is `None`.
    ///
    /// # Errors
    ///
    /// As [`Model::load`].
    pub fn load_into<'s>(
        slot: &'s mut Option<Self>,
        blob: &'b [u8],
    ) -> Result<&'s Self, BlobError> {
        if let Err(e) = slot.insert(Model::empty(blob)).fill() {
            *slot = None;
            return Err(e);
        }
        // `slot` was just filled, so the error is never returned.
        slot.as_ref()
            .ok_or(BlobError::global(0, BlobErrorKind::Truncated))
    }

    /// A model with no layers, which only [`Model::fill`] may see.
    #[inline]
    fn empty(blob: &'b [u8]) -> Self {
        Model {
            blob,
            layers: Vec::new(),
            arena_bytes: 0,
            metadata: Metadata::EMPTY,
            crc: 0,
            version: 0,
            feature_spec_at: 0,
            engine: Engine::detect(),
        }
    }

    /// Validates `self.blob` and fills every other field; `self.layers` must be empty.
    fn fill(&mut self) -> Result<(), BlobError> {
        use BlobErrorKind as K;
        let blob = self.blob;
        use format::header as h;
        let g = BlobError::global;

        let header = Header::new_checked(blob).ok_or(g(blob.len(), K::Truncated))?;
        if !header.magic_ok() {
            return Err(g(h::MAGIC.start, K::BadMagic));
        }
        let version = header.version();
        if !(format::OLDEST_FORMAT_VERSION..=format::FORMAT_VERSION).contains(&version) {
            return Err(g(
                h::VERSION.start,
                K::UnsupportedVersion { found: version },
            ));
        }
        if header.flags() & !h::KNOWN_FLAGS != 0 {
            return Err(g(
                h::FLAGS.start,
                K::UnknownFlags {
                    found: header.flags(),
                },
            ));
        }
        if header.total_len() as usize != blob.len() || u32::try_from(blob.len()).is_err() {
            return Err(g(
                h::TOTAL_LEN.start,
                K::LengthMismatch {
                    declared: header.total_len(),
                },
            ));
        }
        let computed = format::compute_crc(blob);
        if computed != header.crc() {
            return Err(g(
                h::CRC.start,
                K::CrcMismatch {
                    stored: header.crc(),
                    computed,
                },
            ));
        }
        if let Some(at) = header.nonzero_reserved() {
            return Err(g(at, K::ReservedNotZero));
        }
        if version < format::FEATURE_SPEC_VERSION
            && let Some(at) = header.nonzero_feature_spec_fields()
        {
            return Err(g(at, K::ReservedNotZero));
        }
        if header.layer_table_offset() as usize != HEADER_LEN {
            return Err(g(h::LAYER_TABLE_OFFSET.start, K::BadTableOffset));
        }
        let count = header.layer_count();
        if count == 0 || usize::from(count) > MAX_LAYERS {
            return Err(g(h::LAYER_COUNT.start, K::BadLayerCount { found: count }));
        }
        let table_end = HEADER_LEN + ENTRY_LEN * usize::from(count);
        if table_end > blob.len() {
            return Err(g(blob.len(), K::Truncated));
        }
        let meta_offset = header.metadata_offset() as usize;
        let meta_len = header.metadata_len() as usize;
        if meta_offset < table_end || meta_offset.checked_add(meta_len) != Some(blob.len()) {
            return Err(g(h::METADATA_OFFSET.start, K::MetadataOutOfBounds));
        }
        if !meta_offset.is_multiple_of(format::METADATA_ALIGN) {
            return Err(g(h::METADATA_OFFSET.start, K::MetadataMisaligned));
        }

        self.crc = header.crc();
        self.version = version;
        let layers = &mut self.layers;
        let mut placed: Vec<layer::Placed, { MAX_LAYERS * 4 }> = Vec::new();
        for index in 0..count {
            let base = HEADER_LEN + ENTRY_LEN * usize::from(index);
            let entry = Entry::new_checked(blob, base).ok_or(g(base, K::Truncated))?;
            let plan = layer::check_layer(
                layer::LayerCheck {
                    blob,
                    entry,
                    index,
                    base,
                    kind: LayerKind::Quantize,
                    sections_start: table_end,
                    sections_end: meta_offset,
                    placed: &mut placed,
                    version,
                },
                layers,
            )?;
            layers
                .push(plan)
                .map_err(|_| g(h::LAYER_COUNT.start, K::BadLayerCount { found: count }))?;
        }

        let (last_index, last) = match layers.last() {
            Some(l) => (layers.len() - 1, *l),
            None => return Err(g(h::LAYER_COUNT.start, K::BadLayerCount { found: count })),
        };
        let last_err = |kind| BlobError {
            layer: u16::try_from(last_index).ok(),
            layer_kind: Some(last.kind()),
            offset: clamp_offset(last.entry_offset + format::entry::OUT_TIME.start),
            kind,
        };
        if last.out_shape.0 != 1 {
            return Err(last_err(K::OutputNotVector));
        }
        if last.out_shape.1 > MAX_CLASSES {
            return Err(last_err(K::TooManyClasses {
                found: u16::try_from(last.out_shape.1).unwrap_or(u16::MAX),
            }));
        }

        let spec = match (header.feature_spec_offset(), header.feature_spec_len()) {
            (0, 0) => None,
            (offset, len) => {
                let offset = offset as usize;
                if len as usize != format::feature_spec::LEN {
                    return Err(g(
                        h::FEATURE_SPEC_LEN.start,
                        K::FeatureSpecLength { found: len },
                    ));
                }
                if !offset.is_multiple_of(format::SECTION_ALIGN) {
                    return Err(g(h::FEATURE_SPEC_OFFSET.start, K::FeatureSpecMisaligned));
                }
                let end = offset.saturating_add(format::feature_spec::LEN);
                if offset < table_end || end > meta_offset {
                    return Err(g(h::FEATURE_SPEC_OFFSET.start, K::FeatureSpecOutOfBounds));
                }
                if layer::overlaps(&placed, offset, end) {
                    return Err(g(h::FEATURE_SPEC_OFFSET.start, K::FeatureSpecOverlap));
                }
                let bytes = blob
                    .get(offset..end)
                    .ok_or(g(h::FEATURE_SPEC_OFFSET.start, K::FeatureSpecOutOfBounds))?;
                Some((offset, bytes))
            }
        };

        let metadata = metadata::parse(blob, meta_offset, meta_len)?;
        let features = layers.first().map_or(0, |l| l.out_shape.1);
        if usize::from(metadata.feature_count) != features {
            return Err(g(
                meta_offset,
                K::FeatureCountMismatch {
                    names: metadata.feature_count,
                    features: u16::try_from(features).unwrap_or(u16::MAX),
                },
            ));
        }
        if usize::from(metadata.label_count) != last.out_shape.1 {
            return Err(g(
                meta_offset,
                K::LabelCountMismatch {
                    names: metadata.label_count,
                    classes: u16::try_from(last.out_shape.1).unwrap_or(u16::MAX),
                },
            ));
        }

        if let Some((offset, bytes)) = spec {
            // A build that can read the spec checks every field and the names; one that cannot (no `stream`, no
            // `alloc`: lean firmware fed feature vectors) checks the placement above only, since nothing in it
            // ever reads the section, and so stays small.
            #[cfg(any(feature = "stream", feature = "alloc"))]
            {
                let spec = feature_spec::parse(bytes, offset)?;
                feature_spec::check_names(&spec, &metadata, features, blob, meta_offset)?;
            }
            #[cfg(not(any(feature = "stream", feature = "alloc")))]
            let _ = bytes;
            self.feature_spec_at = u32::try_from(offset).unwrap_or(0);
        }

        self.arena_bytes =
            arena::place(&mut self.layers).ok_or(g(h::LAYER_COUNT.start, K::ArenaTooLarge))?;
        self.metadata = metadata;
        Ok(())
    }
}
