// Time-lapse: sickness map for every frame of a stack, and a plot of the mean sick probability
// over time, to see when the light starts to hurt the cells.
//   phototox fiji --macro phototox_timelapse.ijm --args "input=/data/movie.tif output=/data/out"
// Needs Phototox_.jar and either 'phototox fiji' (in-process) or a running 'phototox serve'.
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109), reimplemented by phototox.

args = getArgument();
input = phototoxArg(args, "input", "");
output = phototoxArg(args, "output", "");
if (input == "") input = File.openDialog("Time-lapse stack (TIFF)");
if (output == "") output = getDirectory("Folder for maps, results and plot");
if (!endsWith(output, File.separator)) output = output + File.separator;
options = "stack stride=" + phototoxArg(args, "stride", "32") + " mode=" + phototoxArg(args, "mode", "dense")
       ;
model = phototoxArg(args, "model", "");  // default: the model phototox fiji / phototox serve was started with
if (model != "") options = options + " model=[" + model + "]";
server = phototoxArg(args, "server", "");
if (server != "") options = options + " server=" + server;

setBatchMode(true);
run("Clear Results");
open(input);
stackName = File.nameWithoutExtension;
frames = nSlices;
r = call("phototox.Phototox.measure", options);
if (startsWith(r, "error:")) exit("phototox: " + substring(r, 7));
saveAs("Tiff", output + stackName + "_sickmap.tif");

t = newArray(frames);
p = newArray(frames);
for (i = 0; i < frames; i++) {
    t[i] = i + 1;
    p[i] = getResult("MeanSickProbability", nResults - frames + i);
}
Plot.create("phototox: " + stackName, "frame", "mean P(sick)", t, p);
Plot.setLimits(1, maxOf(2, frames), 0, 1);
Plot.show();
saveAs("PNG", output + stackName + "_sickness_over_time.png");
saveAs("Results", output + stackName + "_phototox.csv");
print("phototox: " + frames + " frame(s); first " + d2s(p[0], 3) + ", last " + d2s(p[frames - 1], 3));

function phototoxArg(arguments, key, fallback) {
    words = split(arguments, " ");
    for (k = 0; k < words.length; k++)
        if (startsWith(words[k], key + "=")) return substring(words[k], lengthOf(key) + 1);
    return fallback;
}
