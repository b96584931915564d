// Time-lapse phototoxicity of the open stack: runs `phototox timecourse` on it and shows the plot
// and the per-frame table (P(sick), motion, confluence, mitotic rounding; onsets need control
// fields, see README). Frame interval and pixel size come from Image > Properties.
//   Open a time-lapse, then Plugins > Macros > Run... this file, or headless:
//   ImageJ -batch phototox_timecourse.ijm "input=/data/movie.tif output=/data/tc split=2x2"
// Needs the `phototox` command on the PATH (or give phototox=/path/to/phototox).
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109), reimplemented by phototox.

args = getArgument();
input = tcArg(args, "input", "");
output = tcArg(args, "output", "");
splitArg = tcArg(args, "split", "1x1");
exe = tcArg(args, "phototox", "phototox");
extra = tcArg(args, "extra", "");  // one more option, e.g. extra=--no-sickness

if (input != "") open(input);
if (nImages == 0) fail("phototox: open a time-lapse stack first");
frames = nSlices;
if (frames < 2) fail("phototox: the image has one frame; timecourse needs a time-lapse");
Stack.getUnits(xUnit, yUnit, zUnit, timeUnit, valueUnit);
interval = Stack.getFrameInterval();
if (interval <= 0) fail("phototox: no frame interval; set it in Image > Properties (Frame interval)");
if (timeUnit == "sec" || timeUnit == "s") interval = interval / 60;
if (timeUnit == "hour" || timeUnit == "h" || timeUnit == "hr") interval = interval * 60;
getPixelSize(unit, pixelWidth, pixelHeight);
if (unit != "micron" && unit != "microns" && unit != "um" && unit != "µm")
    fail("phototox: pixel size is in '" + unit + "'; set it in micrometres in Image > Properties");

if (output == "") output = getDirectory("Folder for the timecourse report");
if (!endsWith(output, File.separator)) output = output + File.separator;
File.makeDirectory(output);
// Work on a copy written into the output folder: the open image (and its file) is never changed.
stackPath = output + "input_stack.tif";
run("Duplicate...", "title=phototox_timecourse_input duplicate");
saveAs("Tiff", stackPath);
close();

if (extra == "")
    result = exec(exe, "timecourse", stackPath, "--interval", "" + interval, "--pixel-size", "" + pixelWidth,
               "--split", splitArg, "--out", output, "--quiet");
else
    result = exec(exe, "timecourse", stackPath, "--interval", "" + interval, "--pixel-size", "" + pixelWidth,
               "--split", splitArg, "--out", output, "--quiet", extra);
print(result);
if (!File.exists(output + "timecourse.csv")) fail("phototox: timecourse failed:\n" + result);
open(output + "timecourse_measures.png");
Table.open(output + "timecourse.csv");
print("phototox: report in " + output + "timecourse_report.md");

function fail(message) {
    // print and stop without a dialog (a dialog would block headless and batch runs)
    print(message);
    exit;
}

function tcArg(arguments, key, fallback) {
    words = split(arguments, " ");
    for (k = 0; k < words.length; k++)
        if (startsWith(words[k], key + "=")) return substring(words[k], lengthOf(key) + 1);
    return fallback;
}
