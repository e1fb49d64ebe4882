"""The defaults and choices that a command shares with the module behind it (the web demo, Grad-CAM, the audit,
fgvc split, the zoom, the unknown score, the synthetic set), here so that the command line declares its flags
without importing torch, each with the measurement or reason behind it."""

DIFFICULTIES = ("easy", "hard")  # fgvc synth's datasets (see fgvc.data.synthetic)
# fgvc audit's defaults: near copies by the cosine similarity of pretrained Lite0 features (on warbirds20 every pair at
# 0.90 or above that was looked at is one photo, cropped, recoloured or mirrored; copies go down to about 0.87,
# look-alikes come in below 0.90); tiny photos (short side in px) and stretched ones (long side / short side); the
# folds of the out-of-fold probabilities behind the doubtful labels
AUDIT_SIMILARITY, AUDIT_MIN_SIDE, AUDIT_MAX_ASPECT, AUDIT_FOLDS = 0.90, 64, 3.0, 5
WEIGHTS = ("raw", "ema")  # what inference may load: the trained weights, or their moving average (ema_decay)
CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam", "ablationcam")
PER_CHANNEL_METHODS = ("scorecam", "ablationcam")  # one forward pass per channel of the target layer (1,280 for Lite0)
# fgvc serve's limits: a phone's photo is a few MB (FGVC-Aircraft's under 1 MB); the longest one click's ScoreCAM or
# AblationCAM may take by its estimate, in seconds; clicks that may wait while one photo is worked on
MAX_UPLOAD_MB, CAM_BUDGET_S, QUEUE_SIZE = 20.0, 30.0, 8
# Your own photos (fgvc.data.split, fgvc.data.duplicates): the split file fgvc split writes into the data root; its
# default shares, 70 / 15 / 15 (most photos train: on small data every one counts, warbirds20's learning curve gains
# 9 points from 50 to 100 photos per type; and 15 % of 100 photos for each of 20 types is 300 to tune on); near
# duplicates, 64-bit dHashes within 6 bits (issue 29's measurement on web photos: re-encoded and resized copies
# and some look-alikes)
SPLIT_FILE, VAL_SHARE, TEST_SHARE, NEAR_BITS = "splits.csv", 0.15, 0.15, 6
ZOOM_THRESHOLD, ZOOM_PAD = 0.3, 0.1  # the defaults of fgvc.models.zoom.Zoom, the zoomed second look
UNKNOWN_SCORES = ("msp", "energy", "mahalanobis")  # fgvc.models.calibration's scores of "none of the types I know"
# fgvc calibrate's defaults: the score (the best against warbirds20 types held out of training, README), the share
# of val photos kept
UNKNOWN_SCORE, UNKNOWN_KEEP = "energy", 0.95
