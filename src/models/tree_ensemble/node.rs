//! The flat node record the walk reads: its packed encoding of each ONNX branch mode, and
//! the comparison rules the walk is specialised on.

// `Node::feature` packs the feature index with a truth table of the node's test, so that
// the hot loop touches a single 16-byte record per level and mixed modes need no branch.
const FEATURE_BITS: u32 = 24;
pub(super) const FEATURE_MASK: u32 = (1 << FEATURE_BITS) - 1;
pub(super) const TABLE_SHIFT: u32 = FEATURE_BITS;
// Truth-table bits, indexed by how `x` orders against the threshold (see `MixedRule`).
const WHEN_NAN: u32 = 1 << 0;
const WHEN_LESS: u32 = 1 << 1;
const WHEN_EQUAL: u32 = 1 << 2;
const WHEN_GREATER: u32 = 1 << 4;

/// One tree node. A leaf points to itself on both sides, so walking past it is a no-op and
/// the walk needs no per-step leaf test.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct Node {
    pub(super) feature: u32,
    pub(super) threshold: f32,
    /// `next[1]` when the comparison holds (the ONNX "true" branch), else `next[0]`.
    pub(super) next: [u32; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    pub(super) fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            _ => return None,
        })
    }

    /// The node's truth table and an f32 threshold chosen so that testing an f32 `x` against
    /// it agrees with testing against the f64 `t` (double thresholds come from
    /// `nodes_values_as_tensor`; plain f32 ones pass through unchanged).
    pub(super) fn encode(self, t: f64, missing_true: bool) -> (u32, f32) {
        let (table, threshold) = match self {
            Mode::Leq => (WHEN_LESS | WHEN_EQUAL, f32_at_most(t)),
            Mode::Lt => (WHEN_LESS, f32_at_least(t)),
            Mode::Gte => (WHEN_EQUAL | WHEN_GREATER, f32_at_least(t)),
            Mode::Gt => (WHEN_GREATER, f32_at_most(t)),
            Mode::Eq | Mode::Neq => {
                let r = t as f32;
                // An unrepresentable value equals no f32 input.
                let equal = if f64::from(r) == t { WHEN_EQUAL } else { 0 };
                if self == Mode::Eq {
                    (equal, r)
                } else {
                    // NaN != t holds under IEEE comparison.
                    (
                        WHEN_LESS | WHEN_GREATER | WHEN_NAN | (WHEN_EQUAL ^ equal),
                        r,
                    )
                }
            }
            Mode::Leaf => (0, 0.0),
        };
        let missing = if missing_true { WHEN_NAN } else { 0 };
        (table | missing, threshold)
    }
}

fn f32_at_most(v: f64) -> f32 {
    let r = v as f32;
    if f64::from(r) > v {
        r.next_down()
    } else {
        r
    }
}

fn f32_at_least(v: f64) -> f32 {
    let r = v as f32;
    if f64::from(r) < v {
        r.next_up()
    } else {
        r
    }
}

/// Comparison used by the walk, chosen once per model so the common uniform-mode case
/// compiles to a bare compare-and-select.
pub(super) trait Rule {
    fn holds(x: f32, node: &Node) -> bool;
}

pub(super) struct LeqRule;
pub(super) struct LtRule;
pub(super) struct GteRule;
pub(super) struct GtRule;
/// A uniform comparison plus per-node "NaN goes true" tracking (LightGBM, XGBoost and
/// HistGradientBoosting exports), kept out of `MixedRule` because the table lookup costs
/// about twice as much per level.
pub(super) struct NanTracked<R>(std::marker::PhantomData<R>);
/// Any mix of modes and missing-value tracking, looked up in the node's truth table.
pub(super) struct MixedRule;

impl Rule for LeqRule {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        x <= node.threshold
    }
}

impl Rule for LtRule {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        x < node.threshold
    }
}

impl Rule for GteRule {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        x >= node.threshold
    }
}

impl Rule for GtRule {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        x > node.threshold
    }
}

impl<R: Rule> Rule for NanTracked<R> {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        // Non-short-circuit operators keep this branch-free.
        R::holds(x, node) | (x.is_nan() & (node.feature & (WHEN_NAN << TABLE_SHIFT) != 0))
    }
}

impl Rule for MixedRule {
    #[inline(always)]
    fn holds(x: f32, node: &Node) -> bool {
        let t = node.threshold;
        // 0 when x is NaN, else the WHEN_LESS / WHEN_EQUAL / WHEN_GREATER bit position.
        let order = u32::from(x < t) | (u32::from(x == t) << 1) | (u32::from(x > t) << 2);
        (node.feature >> (TABLE_SHIFT + order)) & 1 != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WalkKind {
    Leq,
    Lt,
    Gte,
    Gt,
    Mixed,
}
