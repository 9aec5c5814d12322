//! Diagnostics shared by every phase of the front end: a stable [`Code`], a severity, a
//! primary location, labels, related locations and a help line. The data lives here; rendering
//! is in `check::render`, long explanations in `check::explain`.

use super::span::{FileId, Loc, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $title:literal;)*) => {
        /// Every diagnostic code peftc emits. Codes are stable: never renumber, only add.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }
        impl Code {
            /// All codes, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            /// The code as printed (`E0101`).
            pub fn as_str(self) -> &'static str { match self { $(Code::$variant => $code,)* } }
            /// A short title.
            pub fn title(self) -> &'static str { match self { $(Code::$variant => $title,)* } }
            /// Looks a code up by its printed form (case-insensitive).
            pub fn parse(s: &str) -> Option<Code> {
                let s = s.trim().to_ascii_uppercase();
                Code::ALL.iter().copied().find(|c| c.as_str() == s)
            }
        }
    };
}

codes! {
    Syntax = "E0001", "syntax error";
    UnterminatedString = "E0002", "unterminated string";
    UnknownUnit = "E0003", "unknown unit";
    KeywordAsName = "E0004", "keyword used as a name";
    NestingTooDeep = "E0005", "value nested too deeply";
    UnknownName = "E0101", "unknown name";
    DuplicateDecl = "E0102", "duplicate declaration";
    UnknownField = "E0103", "unknown field";
    ForeignSpelling = "E0104", "field spelled as in another tool";
    MissingField = "E0105", "missing required field";
    DuplicateField = "E0106", "field set twice";
    UnknownModule = "E0107", "unknown module or import";
    ImportCycle = "E0108", "import cycle";
    UnreadableImport = "E0109", "imported file cannot be read";
    WrongKind = "E0110", "reference to the wrong kind of declaration";
    ExtendCycle = "E0111", "declaration extends itself";
    TypeMismatch = "E0201", "wrong type";
    OutOfRange = "E0202", "value out of range";
    UnknownVariant = "E0203", "unknown option";
    WrongUnit = "E0204", "wrong unit";
    BadCall = "E0205", "bad call";
    SearchMisuse = "E0206", "misused sweep or escalate";
    BadSplit = "E0207", "invalid split";
    UnknownSplit = "E0208", "unknown split";
    ModelNotFound = "E0301", "model not found";
    UnknownTarget = "E0302", "unknown target module";
    RankTooLarge = "E0303", "rank larger than the layer";
    UnsupportedModel = "E0304", "unsupported or unreadable model";
    TaskMismatch = "E0305", "task does not fit the model or data";
    BadGguf = "E0306", "invalid GGUF file";
    DataNotFound = "E0401", "data file not found";
    MissingMapping = "E0402", "dataset lacks the fields the task needs";
    TemplateHole = "E0403", "template names an unknown field";
    CompletionOnlyWithoutPrompt = "E0404", "completion_only without a prompt";
    GateUnknownMetric = "E0501", "gate names a metric the eval does not compute";
    BadGate = "E0502", "invalid gate";
    MetricForTask = "E0503", "metric does not fit the task";
    StackBases = "E0601", "stacked adapters on different bases";
    BadMix = "E0602", "invalid mix";
    OutOfMemory = "E0701", "estimated memory exceeds the device";
    ExportFormat = "E0801", "export format does not fit its source";
    ExportEmptyPath = "E0950", "export to an empty path";
    ExportOverProject = "E0951", "export over the project folder";
    ExportOverInput = "E0952", "export over an input of the pipeline";
    ExportOverlap = "E0953", "two exports share a folder";
    MergeBottleneck = "E1001", "a bottleneck adapter cannot be merged";
    MixBottleneck = "E1002", "a weighted mix holds a bottleneck adapter";
    InitQuantized = "E1003", "PiSSA / OLoRA on a quantized base";
    DataFieldMissing = "E1201", "field not in the data";
    DataFieldType = "E1202", "field of the wrong type in the data";
    DataLabelUnknown = "E1203", "label in the data not declared";
    DataMalformed = "E1204", "data file cannot be parsed";
    TemplateIsBuiltin = "E1205", "template string names a built-in template";
    DeviceNotBuilt = "E1206", "device this build cannot use";
    ContextTooShort = "E1207", "max_len above the model's context length";
    ModelFolderIncomplete = "E1208", "model folder without safetensors weights or tokenizer";
    DataWithoutSplit = "E1209", "split dataset used without a split";
    MetricNeedsCompletion = "E1210", "metric needs data with a completion";
    UnusedArgument = "E1211", "argument the call does not take";
    GateNeverPasses = "E1212", "gate that can never pass";
    AdaptersNotCombinable = "E1213", "adapter kinds that cannot be combined";
    AdapterShapeMismatch = "E1214", "adapter whose shapes do not fit the base";
    SplitTooSmall = "E1215", "split part the data cannot fill";
    EscalationNotUp = "E1216", "escalation that does not go up";
    UnusedDecl = "W0101", "unused declaration";
    UnusedImport = "W0102", "unused import";
    ShapesUnknown = "W0301", "model shapes unknown";
    SearchUndecided = "W0501", "a sweep or escalation nothing evaluates";
    HighRank = "W0302", "very high rank";
    AlphaRatio = "W0303", "unusual alpha / r";
    ImplicitCombination = "W0601", "several adapters active with no declared combination";
    ForeignBase = "W0602", "adapter trained on another base";
    MergeQuantizedUnchecked = "W0603", "merge into a quantized base without a later eval";
    NotPortable = "W0801", "the serving runtime cannot load this adapter";
    ExportOutsideProject = "W0950", "export outside the project folder";
    QuantOptionUnused = "E1101", "option does not apply to this quantization format";
    GgufUnsupported = "E1102", "GGUF file the runtime cannot build";
    WeightsNotGguf = "E1103", "`weights` applies to GGUF bases only";
    ComputeConflict = "E1104", "quant compute and model dtype disagree";
    QuantLayersDense = "W1101", "layers the quantization format cannot store stay dense";
    PeftNotFound = "E1050", "PEFT adapter folder not found";
    PeftUnsupported = "E1051", "PEFT adapter that peftc cannot load";
    PeftMismatch = "E1052", "PEFT adapter does not fit the model";
    PeftTask = "E1053", "PEFT adapter made for another task";
    PeftNotTrainable = "E1054", "an existing PEFT adapter in a train";
    PeftForeignBase = "W1050", "PEFT adapter made for another base model";
    TemplateWithoutHole = "W1201", "template without a `{..}` hole";
    EpochsIgnored = "W1202", "epochs ignored because max_steps is set";
    EvalOverlapsTrain = "W1203", "eval data overlaps the train data";
    WarmupLongerThanRun = "W1204", "warmup as long as the run";
    GateNeverFails = "W1205", "gate that can never fail";
    LearningRateUnusual = "W1206", "learning rate outside the usual range";
    ExportUngated = "W1207", "export that no gate covers";
    LabelImbalance = "W1208", "labels so imbalanced that accuracy says little";
    CompletionTruncated = "W1209", "max_len cuts the completion off";
    FewSteps = "W1210", "run of one or two optimizer steps";
}

impl Code {
    /// Warnings are the `W` codes, errors the `E` codes.
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

/// A secondary location with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub loc: Loc,
    pub message: String,
}

/// One problem found in a `.peft` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// One line saying what is wrong.
    pub message: String,
    /// Where: the primary span.
    pub loc: Loc,
    /// What is wrong *here* (shown under the primary span).
    pub label: Option<String>,
    /// Other places that matter (the first declaration of a duplicate, the eval's metrics).
    pub related: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `file` with the code's severity.
    pub fn new(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            loc: Loc { file, span },
            label: None,
            related: Vec::new(),
            help: None,
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_related(mut self, loc: Loc, message: impl Into<String>) -> Self {
        self.related.push(Label {
            loc,
            message: message.into(),
        });
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
