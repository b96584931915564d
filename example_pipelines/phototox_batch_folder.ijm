// Batch: every image in a folder -> sickness map TIFF + one Results row per image -> CSV.
// Run from Fiji (Plugins>Macros>Run...), or headless with arguments:
//   phototox fiji --macro phototox_batch_folder.ijm --args "input=[/data/my phase] output=/data/out mode=dense"
// (paths with spaces in [brackets], as ImageJ records them). A folder with no image to analyse is an error.
// Needs Phototox_.jar and either 'phototox fiji' (in-process) or a running 'phototox serve'.
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109), reimplemented by phototox.

args = getArgument();
input = phototoxArg(args, "input", "");
output = phototoxArg(args, "output", "");
if (input == "") input = getDirectory("Folder of phase-contrast images");
if (output == "") output = getDirectory("Folder for maps and results");
if (!endsWith(input, File.separator)) input = input + File.separator;
if (!endsWith(output, File.separator)) output = output + File.separator;
options = "mode=" + phototoxArg(args, "mode", "dense")
        + " threshold=" + phototoxArg(args, "threshold", "0.5");
stride = phototoxArg(args, "stride", "");  // default: phototox's own (phototox.defaults.DEFAULT_STRIDE)
if (stride != "") options = options + " stride=" + stride;
model = phototoxArg(args, "model", "");  // default: the model phototox fiji / phototox serve was started with
if (model != "") options = options + " model=[" + model + "]";
server = phototoxArg(args, "server", "");
if (server != "") options = options + " server=" + server;

setBatchMode(true);
run("Clear Results");
files = getFileList(input);
done = 0;
for (i = 0; i < files.length; i++) {
    name = files[i];
    lower = toLowerCase(name);
    if (!(endsWith(lower, ".tif") || endsWith(lower, ".tiff") || endsWith(lower, ".png"))) continue;
    if (indexOf(name, "_sickmap") >= 0) continue;
    open(input + name);
    source = getImageID();
    mean = phototoxMeasure(options);
    saveAs("Tiff", output + File.nameWithoutExtension + "_sickmap.tif");
    close();
    selectImage(source);
    close();
    print(name + ": mean P(sick) = " + d2s(mean, 3));
    done++;
}
if (done == 0) exit("phototox: no image analysed: " + input + " holds no .tif, .tiff or .png image");
saveAs("Results", output + "phototox_results.csv");
print("phototox: " + done + " image(s) analysed; results in " + output + "phototox_results.csv");

function phototoxMeasure(options) {
    r = call("phototox.Phototox.measure", options);
    if (startsWith(r, "error:")) exit("phototox: " + substring(r, 7));
    parts = split(r, ";");
    for (k = 0; k < parts.length; k++) {
        kv = split(parts[k], "=");
        if (kv[0] == "mean_sick_probability") return parseFloat(kv[1]);
    }
    return NaN;
}

// key=value or key=[value with spaces] (ImageJ's own option syntax) -> value of key (or fallback).
function phototoxArg(arguments, key, fallback) {
    return call("ij.Macro.getValue", arguments, key, fallback);
}
