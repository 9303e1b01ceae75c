//! Stored augmented views (`[data.views]`): joins the K views `distill-label label --views K`
//! stored for each training row, and checks that replaying a view's seed on the row's
//! un-augmented input rebuilds the very input the teacher scored.

use std::collections::HashMap;

use distill_proto::views::{
    view_id, Augment, AUGMENT_COLUMN, VIEW_COLUMN, VIEW_OF_COLUMN, VIEW_SEED_COLUMN,
};

use crate::columns::append_float_rows;
use crate::source::ParquetSource;
use crate::table::{
    read_columns, read_count_mismatch, take_ids, take_u32, take_u64s, ColumnKind, Matrix,
};
use crate::DataError;

/// The views of every training row: row `r`'s view `v` is entry `r * count + v`.
#[derive(Debug, Clone, PartialEq)]
pub struct Views {
    /// Views per row used by this run.
    pub count: usize,
    /// The augmentation every view was made with.
    pub augment: Augment,
    /// `[C, H, W]` of an input row.
    pub layout: [usize; 3],
    /// Each view's seed.
    pub seeds: Vec<u64>,
    /// Stored view inputs found equal to their replay (`None`: the dataset stores no inputs).
    pub verified: Option<usize>,
}

impl Views {
    /// The entry (seed and target row) row `row` trains on in `epoch`: view `epoch mod K`.
    pub fn entry(&self, row: usize, epoch: usize) -> usize {
        row * self.count + epoch % self.count
    }

    /// Writes the input of entry `entry` (rebuilt from the un-augmented `src`) into `dst`.
    pub fn input(&self, entry: usize, src: &[f32], dst: &mut [f32]) {
        self.augment.apply(self.layout, self.seeds[entry], src, dst);
    }
}

/// The `[C, H, W]` layout `augment` reads training rows of `width` values as, checked against
/// `data.image_shape` when given.
pub fn image_layout(
    augment: &Augment,
    width: usize,
    image_shape: Option<&[usize]>,
) -> Result<[usize; 3], String> {
    let layout = augment
        .layout(width)
        .map_err(|e| format!("{e} (the training inputs)"))?;
    match image_shape.and_then(super::jitter::chw) {
        Some(g) if g != layout => Err(format!(
            "augmentation {augment} reads the rows as {layout:?} ([C, H, W]) but data.image_shape is {g:?}"
        )),
        _ => Ok(layout),
    }
}

fn views_error(src: &ParquetSource, message: String) -> DataError {
    DataError::Config {
        key: "data.views".into(),
        message: format!("{}: {message}", src.spec),
    }
}

/// Joins the views in `src` to the training rows `train_ids` (inputs `input`, of the image
/// layout `image_shape` when given): returns the views and, for each entry, the row of `src`
/// holding it. Every training row needs views `0..count`; views of other ids are ignored.
pub fn join(
    src: &ParquetSource,
    train_ids: &[String],
    input: &Matrix,
    image_shape: Option<&[usize]>,
    count: Option<u32>,
) -> Result<(Views, Vec<usize>), DataError> {
    let mut accs = read_columns(
        src,
        &[
            (VIEW_OF_COLUMN, ColumnKind::Ids),
            (VIEW_COLUMN, ColumnKind::Labels),
            (VIEW_SEED_COLUMN, ColumnKind::U64s),
            (AUGMENT_COLUMN, ColumnKind::Ids),
        ],
    )?
    .into_iter();
    let view_of = take_ids(accs.next().ok_or_else(read_count_mismatch)?);
    let view = take_u32(accs.next().ok_or_else(read_count_mismatch)?);
    let seed = take_u64s(accs.next().ok_or_else(read_count_mismatch)?);
    let augment = take_ids(accs.next().ok_or_else(read_count_mismatch)?);

    let spec = augment
        .first()
        .ok_or_else(|| views_error(src, "holds no views".into()))?;
    if let Some(p) = augment.iter().position(|a| a != spec) {
        return Err(views_error(
            src,
            format!(
                "views were made with different augmentations ({spec:?}, and {:?} at row {p}); label one dataset per augmentation",
                augment[p]
            ),
        ));
    }
    let parsed: Augment = spec.parse().map_err(|e| views_error(src, format!("{e}")))?;
    let layout = image_layout(&parsed, input.cols, image_shape).map_err(|m| views_error(src, m))?;

    let stored = view.iter().max().map_or(0, |m| *m as usize + 1);
    let count = match count {
        Some(c) if c as usize > stored => {
            return Err(views_error(
                src,
                format!("data.views.count = {c}, but the dataset holds views 0..{stored} only"),
            ))
        }
        Some(c) => c as usize,
        None => stored,
    };
    let rows: HashMap<&str, usize> = train_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut order = vec![usize::MAX; train_ids.len() * count];
    for (p, (of, &v)) in view_of.iter().zip(&view).enumerate() {
        let (Some(&r), true) = (rows.get(of.as_str()), (v as usize) < count) else {
            continue;
        };
        let slot = &mut order[r * count + v as usize];
        if *slot != usize::MAX {
            return Err(views_error(
                src,
                format!("view {v} of row {of:?} is stored twice"),
            ));
        }
        *slot = p;
    }
    if let Some(e) = order.iter().position(|&p| p == usize::MAX) {
        let missing = order.iter().filter(|&&p| p == usize::MAX).count();
        return Err(views_error(
            src,
            format!(
                "training row {:?} has no view {} ({missing} of {} row views missing; every row needs views 0..{count})",
                train_ids[e / count],
                e % count,
                order.len()
            ),
        ));
    }
    let seeds = order.iter().map(|&p| seed[p]).collect();
    let views = Views {
        count,
        augment: parsed,
        layout,
        seeds,
        verified: None,
    };
    Ok((views, order))
}

/// When `src` stores the views' inputs (column `column`), checks that each used view's
/// stored input equals its replay from `input`, bit for bit; returns how many were checked.
pub fn verify(
    src: &ParquetSource,
    column: &str,
    views: &Views,
    order: &[usize],
    input: &Matrix,
    train_ids: &[String],
) -> Result<Option<usize>, DataError> {
    if !src.has_column(column) {
        return Ok(None);
    }
    let mut owner = vec![usize::MAX; src.rows];
    for (entry, &p) in order.iter().enumerate() {
        owner[p] = entry;
    }
    let width = input.cols;
    let (mut row, mut checked) = (0usize, 0usize);
    let mut stored = Vec::new();
    let mut replay = vec![0f32; width];
    src.for_each_batch(&[column], |file, batch| {
        stored.clear();
        append_float_rows(column, file, batch.column(0).as_ref(), width, row, &mut stored)?;
        for (i, got) in stored.chunks_exact(width).enumerate() {
            let entry = owner[row + i];
            if entry == usize::MAX {
                continue;
            }
            let r = entry / views.count;
            views.input(entry, input.row(r), &mut replay);
            if got.iter().zip(&replay).any(|(a, b)| a.to_bits() != b.to_bits()) {
                return Err(views_error(
                    src,
                    format!(
                        "the stored input of {:?} differs from replaying {} (seed {}) on training row {:?}: the views were labelled from other inputs than data.train",
                        view_id(&train_ids[r], (entry % views.count) as u32),
                        views.augment,
                        views.seeds[entry],
                        train_ids[r]
                    ),
                ));
            }
            checked += 1;
        }
        row += batch.num_rows();
        Ok(())
    })?;
    Ok(Some(checked))
}
