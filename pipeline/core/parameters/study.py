"""The [study] table of a study file (`interbrain study STUDY.toml`; docs/study.md)."""
from pipeline.core.parameters.spec import Param, Section

STUDY = Section("study", "A study file's [study] table (`interbrain study STUDY.toml`; docs/study.md). "
                "Its [[pairs]] tables list the pairs' result folders or session files.", (
    Param("name", None, str, "Name of the study.", required=True),
    Param("output_dir", "", "dir", "Output folder, relative to the study file; empty: study_<name> beside the study file."),
    Param("n_surrogates", 200, int, "Circular-shift surrogates of each study-matched and pseudo-pair PLSC fit.",
          range=(1, None)),
    Param("n_matched", 3, int, "Neuron subsamples per real pair in the study-matched refit.", range=(1, None)),
    Param("pseudo_pairs", True, bool, "Also fit pseudo-pairs (animal A of one pair with B of every other pair) "
          "and compare them with the real pairs."),
    Param("random_state", 0, int, "Seed of the subsampling, surrogates, permutations and bootstrap.",
          range=(0, 2**32 - 1)),
    Param("conditions", ["social", "separated"], list, "The two session conditions compared.", item_type=str),
    Param("n_perm", 10000, int, "Permutations per comparison (exact enumeration when fewer relabelings exist).",
          range=(1, None)),
    Param("n_boot", 2000, int, "Bootstrap resamples of each effect's interval.", range=(1, None)),
), file="study")
