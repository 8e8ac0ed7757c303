//! Tree ensemble classifiers (ONNX-ML's `TreeEnsembleClassifier`, what scikit-learn's forests and
//! gradient boosting and XGBoost export) evaluated by graphc itself, for a model file that is one
//! such operator and nothing else that computes. tract runs the same files, but finds each
//! leaf's votes by walking its leaf table from the start for every tree of every row
//! (tract-onnx-opl 0.23's `ml/tree.rs`), which made a 60-tree model 60 to 700 times slower than
//! onnxruntime (docs/PERFORMANCE.md). This is the same arithmetic in f32 and in the same order as
//! tract (the votes of each tree in turn, then the base values, then the post transform, the label
//! the first highest score), with each leaf's votes found by index. Anything it does not take
//! (another post transform, a binary model's one-column layout, a value it cannot read) leaves
//! the file to tract, unchanged.

use std::collections::HashMap;
use tract_onnx::pb;

/// One node of a tree.
#[derive(Clone, Copy, Debug)]
enum Node {
    Branch { feature: usize, value: f32, test: Test, yes: usize, no: usize },
    Leaf { first_vote: usize, votes: usize },
}

/// How a branch compares a feature with its value (ONNX's `nodes_modes`).
#[derive(Clone, Copy, Debug)]
enum Test {
    LessOrEqual,
    Less,
    GreaterOrEqual,
    Greater,
    Equal,
    NotEqual,
}

impl Test {
    fn holds(self, feature: f32, value: f32) -> bool {
        match self {
            Test::LessOrEqual => feature <= value,
            Test::Less => feature < value,
            Test::GreaterOrEqual => feature >= value,
            Test::Greater => feature > value,
            Test::Equal => feature == value,
            Test::NotEqual => feature != value,
        }
    }
}

/// What is done to the summed scores.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transform {
    None,
    Softmax,
    Logistic,
}

/// The class labels, as the file gives them.
#[derive(Clone, Debug)]
pub(super) enum Labels {
    Ints(Vec<i64>),
    Texts(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Ints(labels) => labels.len(),
            Labels::Texts(labels) => labels.len(),
        }
    }

    /// The label of class `index`, as JSON.
    pub(super) fn get(&self, index: usize) -> serde_json::Value {
        match self {
            Labels::Ints(labels) => labels.get(index).copied().map_or(serde_json::Value::Null, serde_json::Value::from),
            Labels::Texts(labels) => {
                labels.get(index).cloned().map_or(serde_json::Value::Null, serde_json::Value::from)
            }
        }
    }
}

/// A classifier's trees, flattened.
#[derive(Debug)]
pub(super) struct Forest {
    roots: Vec<usize>,
    nodes: Vec<Node>,
    /// Each leaf's votes, `(class, weight)`, leaf after leaf.
    votes: Vec<(usize, f32)>,
    base: Option<Vec<f32>>,
    transform: Transform,
    pub(super) labels: Labels,
    /// Features each row must have at least.
    pub(super) features: usize,
}

fn attribute<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints(node: &pb::NodeProto, name: &str) -> Option<Vec<usize>> {
    attribute(node, name)?.ints.iter().map(|&i| usize::try_from(i).ok()).collect()
}

fn floats<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n [f32]> {
    attribute(node, name).map(|a| a.floats.as_slice())
}

fn texts(node: &pb::NodeProto, name: &str) -> Option<Vec<String>> {
    attribute(node, name)?.strings.iter().map(|s| String::from_utf8(s.clone()).ok()).collect()
}

impl Forest {
    /// The forest of a `TreeEnsembleClassifier` node, when it is one this module evaluates as
    /// tract would.
    pub(super) fn of(node: &pb::NodeProto) -> Option<Forest> {
        let labels = match (attribute(node, "classlabels_int64s"), texts(node, "classlabels_strings")) {
            (Some(ints), None) if !ints.ints.is_empty() => Labels::Ints(ints.ints.clone()),
            (None, Some(texts)) if !texts.is_empty() => Labels::Texts(texts),
            _ => return None,
        };
        let transform = match attribute(node, "post_transform").map(|a| a.s.as_slice()) {
            None | Some(b"NONE") => Transform::None,
            Some(b"SOFTMAX") => Transform::Softmax,
            Some(b"LOGISTIC") => Transform::Logistic,
            Some(_) => return None,
        };
        if attribute(node, "nodes_values_as_tensor").is_some() || attribute(node, "class_weights_as_tensor").is_some() {
            return None;
        }
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let feature_ids = ints(node, "nodes_featureids")?;
        let values = floats(node, "nodes_values")?;
        let modes = texts(node, "nodes_modes")?;
        let yes_ids = ints(node, "nodes_truenodeids")?;
        let no_ids = ints(node, "nodes_falsenodeids")?;
        let count = tree_ids.len();
        if [node_ids.len(), feature_ids.len(), values.len(), modes.len(), yes_ids.len(), no_ids.len()]
            .iter()
            .any(|&n| n != count)
        {
            return None;
        }
        let class_trees = ints(node, "class_treeids")?;
        let class_nodes = ints(node, "class_nodeids")?;
        let class_ids = ints(node, "class_ids")?;
        let weights = floats(node, "class_weights")?;
        if [class_nodes.len(), class_ids.len(), weights.len()].iter().any(|&n| n != class_trees.len()) {
            return None;
        }
        let classes = labels.len();
        // A binary model whose leaves vote for one class only has tract's one-column layout; and
        // a vote for a class past the labels is no model this module knows.
        if classes < 3 || class_ids.iter().any(|&class| class >= classes) {
            return None;
        }
        let base = match floats(node, "base_values") {
            Some(base) if base.len() == classes => Some(base.to_vec()),
            Some([]) | None => None,
            Some(_) => return None,
        };
        let index: HashMap<(usize, usize), usize> =
            tree_ids.iter().zip(&node_ids).enumerate().map(|(flat, (&tree, &id))| ((tree, id), flat)).collect();
        if index.len() != count {
            return None;
        }
        let mut leaf_votes: HashMap<(usize, usize), Vec<(usize, f32)>> = HashMap::new();
        for vote in 0..class_trees.len() {
            leaf_votes
                .entry((class_trees[vote], class_nodes[vote]))
                .or_default()
                .push((class_ids[vote], weights[vote]));
        }
        let mut nodes = Vec::with_capacity(count);
        let mut votes = Vec::with_capacity(class_trees.len());
        for flat in 0..count {
            let tree = tree_ids[flat];
            let test = match modes[flat].as_str() {
                "LEAF" => None,
                "BRANCH_LEQ" => Some(Test::LessOrEqual),
                "BRANCH_LT" => Some(Test::Less),
                "BRANCH_GTE" => Some(Test::GreaterOrEqual),
                "BRANCH_GT" => Some(Test::Greater),
                "BRANCH_EQ" => Some(Test::Equal),
                "BRANCH_NEQ" => Some(Test::NotEqual),
                _ => return None,
            };
            nodes.push(match test {
                None => {
                    let these = leaf_votes.remove(&(tree, node_ids[flat])).unwrap_or_default();
                    let first_vote = votes.len();
                    votes.extend_from_slice(&these);
                    Node::Leaf { first_vote, votes: these.len() }
                }
                Some(test) => Node::Branch {
                    feature: feature_ids[flat],
                    value: values[flat],
                    test,
                    yes: *index.get(&(tree, yes_ids[flat]))?,
                    no: *index.get(&(tree, no_ids[flat]))?,
                },
            });
        }
        // Trees in their ids' order, each from its node 0 (or its first node).
        let mut trees: Vec<usize> = tree_ids.clone();
        trees.sort_unstable();
        trees.dedup();
        let roots = trees
            .iter()
            .map(|&tree| index.get(&(tree, 0)).copied().or_else(|| tree_ids.iter().position(|&t| t == tree)))
            .collect::<Option<Vec<usize>>>()?;
        let features = feature_ids.iter().max().map_or(0, |&f| f + 1);
        Some(Forest { roots, nodes, votes, base, transform, labels, features })
    }

    /// Each class's score for one row, transformed.
    pub(super) fn scores(&self, row: &[f32]) -> Vec<f32> {
        let mut scores = vec![0f32; self.labels.len()];
        for &root in &self.roots {
            let mut at = root;
            // A tree is finite and acyclic as exported; the bound keeps a malformed one finite.
            for _ in 0..=self.nodes.len() {
                match self.nodes.get(at) {
                    Some(Node::Branch { feature, value, test, yes, no }) => {
                        let x = row.get(*feature).copied().unwrap_or(f32::NAN);
                        at = if test.holds(x, *value) { *yes } else { *no };
                    }
                    Some(Node::Leaf { first_vote, votes }) => {
                        for &(class, weight) in self.votes.get(*first_vote..first_vote + votes).unwrap_or(&[]) {
                            if let Some(score) = scores.get_mut(class) {
                                *score += weight;
                            }
                        }
                        break;
                    }
                    None => break,
                }
            }
        }
        if let Some(base) = &self.base {
            scores.iter_mut().zip(base).for_each(|(score, base)| *score += base);
        }
        match self.transform {
            Transform::None => {}
            Transform::Logistic => scores.iter_mut().for_each(|s| *s = 1.0 / (1.0 + (-*s).exp())),
            Transform::Softmax => {
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                scores.iter_mut().for_each(|s| *s = (*s - max).exp());
                let sum: f32 = scores.iter().sum();
                scores.iter_mut().for_each(|s| *s /= sum);
            }
        }
        scores
    }

    /// The class of the first highest score.
    pub(super) fn winner(scores: &[f32]) -> usize {
        let mut best = 0;
        for (index, score) in scores.iter().enumerate() {
            if *score > scores.get(best).copied().unwrap_or(f32::NEG_INFINITY) {
                best = index;
            }
        }
        best
    }
}
