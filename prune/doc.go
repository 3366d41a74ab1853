// Package prune decides what of a registry's storage the image API no longer references, and
// removes it. It reads nothing itself: storage and the image API come in through narrow
// interfaces (InventorySource, ReferenceSource, ManifestReader, TagResolver, Remover), so
// that the decision is a pure function, tested without either.
//
// # The pipeline
//
// Run takes one pass:
//
//  1. mark: the image API's Images and ImageStreams become References (ReferenceBuilder),
//     while storage is walked into an Inventory, at the same time;
//  2. resolve: manifests the references reach but cannot describe (a child of a list
//     without an Image, an Image without its config) are read from storage (Resolve);
//  3. decide: Decide turns references and inventory into a Plan, every object in it
//     with the Reason that removes it; tags it cannot decide from their index alone are
//     read and it decides again (DecideAndResolve);
//  4. interlock: a delete run that looks like the wrong cluster or the wrong storage
//     stops here (ErrWouldDeleteEverything);
//  5. sweep: Sweep hands the plan's objects to the Remover phase by phase.
//
// Explain decides again over the same inputs and shows, for one digest, the rule that
// settled each object naming it: an explanation and a deletion cannot disagree.
//
// # Objects
//
// Every stored object is an Object of one Kind: a repository, a tag, an entry of a tag's
// index, a manifest revision link, a layer link, an unfinished upload, a blob. A kind is
// one constant and one row of kinds (its name, its summary line, its sweep phase); the
// Remover has one method, Delete, with one case per kind. The phases are repositories;
// tags and index entries; manifest links, layer links and uploads; blobs. Blobs go last,
// so that a sweep stopped at any point leaves every remaining link pointing at a blob.
//
// # The rules
//
// Each rule is one Reason; Decide records it on every object it removes, and Explain, the
// log, and the JSON report print it (its code and its sentence).
//
//   - A repository whose image stream does not exist goes whole (ReasonNoStream; a name
//     that no stream can have says so).
//   - A manifest revision link stays while its stream's tag history names it (or a list
//     that reaches it) and some Image (or a manifest read from storage) names the manifest
//     (ReasonInHistory); otherwise it goes (ReasonImageDeleted, ReasonNotInHistory).
//   - A layer link stays while an image of the stream uses the blob and some Image names it
//     (ReasonUsedByStream); otherwise it goes (ReasonNotUsed).
//   - A list that stays keeps all it reaches, at any depth. Where storage cannot say what a
//     manifest uses either, every link and tag of the repository stays (ReasonFailsClosed).
//   - A tag goes with the manifest its current link names (ReasonManifestGoes, with the
//     manifest's reason; ReasonManifestNotLinked; ReasonIndexAllGo; ReasonNoCurrentLink);
//     index entries of manifests that go, go (ReasonEntryManifestGoes).
//   - An unfinished upload goes once older than the purge age (ReasonStaleUpload).
//   - A blob goes when no Image names it and no link that stays points at it
//     (ReasonUnreferenced).
//   - Anything modified within the grace period stays, whatever the above says
//     (ReasonYoung); a repository holding a young manifest that no stream references keeps
//     all its links (ReasonYoungManifest), and a young tag keeps what it points at
//     (ReasonYoungTag).
//
// The last rules together keep the invariant the sweep relies on: every link that stays
// points at a blob that stays.
package prune
