//! The step graph: which steps wait for which, in what order they may run, and how to draw it.
//!
//! Steps are numbered by their index in the plan. An edge goes from a dependency to the step that
//! waits for it. Everything the executor asks repeatedly (sorted neighbours, priorities, a stable
//! topological order) is computed once in [`build`], in O(V + E).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// An acyclic graph of steps.
#[derive(Debug, Clone)]
pub struct StepGraph {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    priority: Vec<usize>,
    order: Vec<usize>,
}

/// Builds the graph; `deps[i]` are the indices step `i` depends on (duplicates allowed).
///
/// On failure, returns one cycle per strongly connected component (a self-dependency is a cycle
/// of one): the shortest cycle through the component's earliest step, as the step ids along it
/// starting there, each step waiting for the one before it. Cycles are ordered by first step.
///
/// Panics if `deps` and `ids` differ in length or a dependency index is out of range.
pub fn build(ids: &[String], deps: &[Vec<usize>]) -> Result<StepGraph, Vec<Vec<String>>> {
    let n = ids.len();
    assert_eq!(deps.len(), n, "one dependency list per step");
    let mut dependencies: Vec<Vec<usize>> = deps.to_vec();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, list) in dependencies.iter_mut().enumerate() {
        list.sort_unstable();
        list.dedup();
        for &d in list.iter() {
            assert!(d < n, "dependency index {d} out of range");
            dependents[d].push(i);
        }
    }

    let mut graph = DiGraph::<(), ()>::with_capacity(n, 0);
    let nodes: Vec<NodeIndex> = (0..n).map(|_| graph.add_node(())).collect();
    for (i, list) in dependencies.iter().enumerate() {
        for &d in list {
            graph.add_edge(nodes[d], nodes[i], ());
        }
    }
    let mut cycles = Vec::new();
    // Kosaraju on petgraph's `Dfs` / `DfsPostOrder`, which keep their stacks on the heap:
    // `tarjan_scc` recurses once per step along a path, and overflowed the main thread's stack
    // on a chain of about 90,000 steps. Nothing in this module recurses.
    for scc in kosaraju_scc(&graph) {
        let members: BTreeSet<usize> = scc.iter().map(|node| node.index()).collect();
        let first = *members.first().expect("components are never empty");
        if members.len() == 1 && !dependencies[first].contains(&first) {
            continue;
        }
        cycles.push(shortest_cycle(first, &members, &dependents));
    }
    if !cycles.is_empty() {
        cycles.sort();
        return Err(cycles
            .into_iter()
            .map(|c| c.into_iter().map(|i| ids[i].clone()).collect())
            .collect());
    }

    let mut remaining: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| remaining[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &next in &dependents[i] {
            remaining[next] -= 1;
            if remaining[next] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    let mut priority = vec![1; n];
    for &i in order.iter().rev() {
        priority[i] = 1 + dependents[i].iter().map(|&d| priority[d]).max().unwrap_or(0);
    }
    let index = ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    Ok(StepGraph {
        ids: ids.to_vec(),
        index,
        dependencies,
        dependents,
        priority,
        order,
    })
}

/// The shortest path from `start` back to itself inside one strongly connected component.
fn shortest_cycle(start: usize, members: &BTreeSet<usize>, dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for &next in &dependents[at] {
            if next == start {
                let mut path = vec![at];
                while let Some(&prev) = came_from.get(path.last().unwrap_or(&start)) {
                    path.push(prev);
                }
                path.reverse();
                return path;
            }
            if members.contains(&next) && !came_from.contains_key(&next) && next != start {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}

impl StepGraph {
    /// The number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the graph has no steps.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The steps `i` waits for, sorted.
    pub fn dependencies(&self, i: usize) -> &[usize] {
        &self.dependencies[i]
    }
    /// The steps that wait for `i`, sorted.
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }
    /// Steps on the longest path from `i` to a step nothing waits for (such a step has 1).
    pub fn priority(&self, i: usize) -> usize {
        self.priority[i]
    }
    /// Every step after all its dependencies; among ready steps, the earlier in the plan first.
    pub fn topological_order(&self) -> Vec<usize> {
        self.order.clone()
    }
    /// The id of step `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }
    /// The index of the step with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// Every step that waits for `i`, directly or not, sorted.
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![i];
        let mut found = Vec::new();
        while let Some(at) = stack.pop() {
            for &next in &self.dependents[at] {
                if !seen[next] {
                    seen[next] = true;
                    found.push(next);
                    stack.push(next);
                }
            }
        }
        found.sort_unstable();
        found
    }

    fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.len()).flat_map(move |i| self.dependents[i].iter().map(move |&d| (i, d)))
    }

    /// Graphviz DOT; node `i` is labelled with its id and `labels[i]` (e.g. its kind).
    pub fn to_dot(&self, labels: &[String]) -> String {
        let quote = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
                .replace('\r', "")
        };
        let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
        for (i, id) in self.ids.iter().enumerate() {
            let label = labels
                .get(i)
                .map_or(String::new(), |l| format!("\\n{}", quote(l)));
            out.push_str(&format!(
                "  \"{}\" [label=\"{}{label}\"];\n",
                quote(id),
                quote(id)
            ));
        }
        for (from, to) in self.edges() {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\";\n",
                quote(&self.ids[from]),
                quote(&self.ids[to])
            ));
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart; nodes are `s0`, `s1`, … labelled with the id and `labels[i]`.
    pub fn to_mermaid(&self, labels: &[String]) -> String {
        let quote = |s: &str| {
            s.replace('#', "#35;")
                .replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
                .replace(['\n', '\r'], " ")
        };
        let mut out = String::from("flowchart LR\n");
        for (i, id) in self.ids.iter().enumerate() {
            let label = labels
                .get(i)
                .map_or(String::new(), |l| format!("<br/>{}", quote(l)));
            out.push_str(&format!("  s{i}[\"{}{label}\"]\n", quote(id)));
        }
        for (from, to) in self.edges() {
            out.push_str(&format!("  s{from} --> s{to}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn neighbours_priorities_and_stable_order() {
        // a; b after a; c after a (twice); d after b and c; e alone.
        let g = build(
            &ids(&["a", "b", "c", "d", "e"]),
            &[vec![], vec![0], vec![0, 0], vec![2, 1], vec![]],
        )
        .unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!(g.dependencies(3), &[1, 2]);
        assert_eq!(g.dependencies(2), &[0]);
        assert_eq!(g.dependents(0), &[1, 2]);
        assert_eq!(
            (0..5).map(|i| g.priority(i)).collect::<Vec<_>>(),
            vec![3, 2, 2, 1, 1]
        );
        assert_eq!(g.topological_order(), vec![0, 1, 2, 3, 4]);
        assert_eq!(g.descendants(0), vec![1, 2, 3]);
        assert_eq!(g.descendants(4), Vec::<usize>::new());
        assert_eq!((g.id(3), g.index_of("d"), g.index_of("zz")), ("d", Some(3), None));
        // Order is by readiness, then plan index: x waits for y.
        let g = build(&ids(&["x", "y", "z"]), &[vec![1], vec![], vec![]]).unwrap();
        assert_eq!(g.topological_order(), vec![1, 0, 2]);
    }

    #[test]
    fn cycles_are_all_reported_with_their_path() {
        // a after c, b after a, c after b: a -> b -> c -> a. d after itself. e fine.
        let err = build(
            &ids(&["a", "b", "c", "d", "e"]),
            &[vec![2], vec![0], vec![1], vec![3], vec![0]],
        )
        .unwrap_err();
        assert_eq!(err, vec![ids(&["a", "b", "c"]), ids(&["d"])]);
        // Figure eight a <-> b, a <-> c: one component, its shortest cycle through `a`.
        let err = build(&ids(&["a", "b", "c"]), &[vec![1, 2], vec![0], vec![0]]).unwrap_err();
        assert_eq!(err, vec![ids(&["a", "b"])]);
        // Edges follow waiting: a after b, b after c, c after a reads a -> c -> b -> a.
        let err = build(&ids(&["a", "b", "c"]), &[vec![1], vec![2], vec![0]]).unwrap_err();
        assert_eq!(err, vec![ids(&["a", "c", "b"])]);
    }

    #[test]
    fn renders_dot_and_mermaid_with_escaping() {
        let g = build(&ids(&["a\"x", "b"]), &[vec![], vec![0]]).unwrap();
        let labels = ids(&["core.noop", "<local>"]);
        assert_eq!(
            g.to_dot(&labels),
            "digraph plan {\n  rankdir=LR;\n  node [shape=box];\n  \"a\\\"x\" [label=\"a\\\"x\\ncore.noop\"];\n  \
             \"b\" [label=\"b\\n<local>\"];\n  \"a\\\"x\" -> \"b\";\n}\n"
        );
        assert_eq!(
            g.to_mermaid(&labels),
            "flowchart LR\n  s0[\"a#quot;x<br/>core.noop\"]\n  s1[\"b<br/>#lt;local#gt;\"]\n  s0 --> s1\n"
        );
    }

    #[test]
    fn chains_of_two_hundred_thousand_steps_build_and_their_cycles_are_found_without_recursion() {
        // Run on a test thread (2 MiB of stack): a recursive walk along the chain overflows it.
        let n = 200_000;
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1, i / 2] })
            .collect();
        let g = build(&names, &deps).unwrap();
        assert_eq!(g.priority(0), n);
        assert_eq!(g.topological_order().len(), n);
        assert_eq!(g.descendants(0).len(), n - 1);
        let mut ring = deps.clone();
        ring[0] = vec![n - 1];
        let cycles = build(&names, &ring).unwrap_err();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].first().map(String::as_str), Some("s0"));
        assert_eq!(cycles[0].last().map(String::as_str), Some("s199999"));
    }
}
