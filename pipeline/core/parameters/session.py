"""Sections that describe the pair session itself (not a stage's settings)."""
from pipeline.core.parameters.spec import MODALITIES, Param, Section

# readers of raw movies (pipeline.io.readers) and of annotation files (behavior.importers)
RAW_FORMATS = ("auto", "tiff", "hdf5", "nwb", "miniscope", "isxd")
ANNOTATION_FORMATS = ("boris", "boris_aggregated", "annot", "simba", "dlc", "csv")

SESSION = Section("session", "The pair session: name, output folder, seed.", (
    Param("name", None, str, "Name of the pair session, e.g. 'pair01_day3'.", required=True),
    Param("output_dir", "results", "dir", "Result folder, relative to the session file."),
    Param("seed", 0, int, "Seed of every random step (surrogates, subsampling).", range=(0, 2**32 - 1)),
    Param("condition", "social", str, "Session condition; 'separated' marks the control session of the same animals imaged apart.",
          choices=("social", "separated", "toy", "other")),
    Param("start_time", "", str, "When the session was recorded, ISO 8601 with time zone, e.g. '2024-03-01T10:30:00+01:00'; "
          "goes into the NWB export (left out when empty: the export then says the start time was not recorded)."),
    Param("experimenter", "", str, "Who recorded the session, 'Last, First'; several separated by ';' (NWB export)."),
    Param("institution", "", str, "Institution where the session was recorded (NWB export)."),
    Param("lab", "", str, "Lab where the session was recorded (NWB export)."),
))

ANIMAL = Section("animal", "One animal of the pair: [animals.A] and [animals.B].", (
    Param("id", None, str, "Animal identifier, e.g. 'm123'.", required=True),
    Param("sex", "unknown", str, "Sex.", choices=("F", "M", "unknown")),
    Param("genotype", "", str, "Cre line or promoter that restricts indicator expression, e.g. 'Vgat-Cre', 'CaMKII'; empty for pan-neuronal."),
    Param("indicator", "GCaMP", str, "Calcium indicator, e.g. 'GCaMP6f'."),
    Param("modality", "2p", str, "Imaging modality.", choices=MODALITIES),
    Param("raw", None, "paths", "Raw movie file(s), in order; a folder of TIFFs or miniscope AVIs is one entry.", required=True),
    Param("raw_format", "auto", str, "Reader to use.", choices=RAW_FORMATS),
    Param("hdf5_dataset", "", str, "Dataset path inside an HDF5 raw file, e.g. '/data'."),
    Param("rois_from", "auto", str, "ROIs and traces: extract them, or take them from the NWB raw file's ImageSegmentation "
          "('auto': from NWB when the raw file is NWB with a segmentation; motion and extraction are then skipped for this animal).",
          choices=("auto", "extract", "nwb")),
    Param("nwb_plane", "", str, "For an NWB raw file with several PlaneSegmentations: the name (or object path) of the one "
          "to analyse; empty takes the only one."),
    Param("segmentation", "", "path", "An existing segmentation to start from instead of extracting: a suite2p plane folder "
          "(e.g. 'A/suite2p/plane0'), a CaImAn HDF5 file or a minian output folder; motion correction and extraction "
          "are then skipped for this animal."),
    Param("segmentation_format", "auto", str, "Tool that wrote 'segmentation' ('auto' guesses from the files).",
          choices=("auto", "suite2p", "caiman", "minian")),
    Param("species", "Mus musculus", str, "Species, Latin binomial, e.g. 'Mus musculus' or 'Rattus norvegicus' (NWB export)."),
    Param("age", "", str, "Age at the session, ISO 8601 duration, e.g. 'P90D' or a range 'P8W/P10W' (NWB export; "
          "left out when empty)."),
    Param("location", "", str, "Brain area imaged, an Allen CCF name or acronym, e.g. 'ACAd' (NWB export; left out when empty)."),
    Param("excitation_wavelength", None, float, "Excitation wavelength of the imaging light (NWB export; left out when unset).",
          unit="nm", range=(200.0, 2000.0)),
    Param("frame_rate", None, float, "Imaging frame rate, used when no timestamps file is given.", unit="Hz", range=(0.1, 1000.0)),
    Param("start_offset_s", 0.0, float, "Master-clock time of frame 0 when no timestamps file is given.", unit="s"),
    Param("timestamps", "", "path", "CSV of frame times on the master clock (columns frame, time_s)."),
    Param("structural", "", "path", "Structural (e.g. red reporter) image or short movie, for cell types."),
    Param("structural_marks", "GABAergic", str, "Which population the structural reporter marks.",
          choices=("GABAergic", "glutamatergic")),
    Param("celltype_source", "auto", str,
          "Where cell types come from: 'auto' uses genotype if set, else the structural channel, else none.",
          choices=("auto", "genotype", "structural", "none")),
    Param("label_table", "", "path", "CSV (animal, roi_id, label) from histology or curation; overrides other sources."),
), kind="animal", key="animals")

ANNOTATIONS = Section("annotations", "A behaviour annotation file: one [[annotations]] table each.", (
    Param("path", None, "path", "Annotation file.", required=True),
    Param("format", "boris", str, "File format.", choices=ANNOTATION_FORMATS),
    Param("clock", "video", str, "Name of the clock (a [clocks.NAME] table) the file's times are on."),
    Param("subjects", {}, dict, "Map from the file's subject names to the animals, e.g. {mouse1 = 'A', mouse2 = 'B'}."),
    Param("animal", "", str, "For single-animal files: the animal the file describes.", choices=("", "A", "B")),
    Param("options", {}, dict, "Format-specific options (column names, thresholds); see docs/behavior_formats.md."),
), kind="array")

CLOCK = Section("clock", "A non-imaging stream's clock: [clocks.NAME].", (
    Param("timestamps", "", "path", "CSV of frame times on the master clock (columns frame, time_s)."),
    Param("sync", "", "path", "CSV of sync pulses seen on both clocks (columns local_s, master_s); fit linearly."),
    Param("frame_rate", None, float, "Frame rate when times are frame indices.", unit="Hz", range=(0.1, 1000.0)),
    Param("offset_s", 0.0, float, "Master-clock time of local time 0, when neither timestamps nor sync is given.", unit="s"),
), kind="named", key="clocks")

TASK = Section("task", "Cooperation-task log of both animals.", (
    Param("log", "", "path", "Task log CSV (time_s, animal, event); see docs/behavior_formats.md."),
    Param("clock", "task", str, "Clock of the log's times."),
))
