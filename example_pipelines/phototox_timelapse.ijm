// Time-lapse: sickness map for every frame of a stack, and a plot of the mean sick probability
// over time, to see when the light starts to hurt the cells.
//   phototox fiji --macro phototox_timelapse.ijm --args "input=[/data/my movie.tif] output=/data/out channel=1"
// Time axis: the stack's frame interval (Image>Properties) when it has one, else frame numbers.
// Multichannel hyperstacks: the channel given by channel=N (default 1) is analysed.
// Needs Phototox_.jar and either 'phototox fiji' (in-process) or a running 'phototox serve'.
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109), reimplemented by phototox.

args = getArgument();
input = phototoxArg(args, "input", "");
output = phototoxArg(args, "output", "");
if (input == "") input = File.openDialog("Time-lapse stack (TIFF)");
if (output == "") output = getDirectory("Folder for maps, results and plot");
if (!endsWith(output, File.separator)) output = output + File.separator;
options = "stack mode=" + phototoxArg(args, "mode", "dense");
stride = phototoxArg(args, "stride", "");  // default: phototox's own (phototox.defaults.DEFAULT_STRIDE)
if (stride != "") options = options + " stride=" + stride;
model = phototoxArg(args, "model", "");  // default: the model phototox fiji / phototox serve was started with
if (model != "") options = options + " model=[" + model + "]";
server = phototoxArg(args, "server", "");
if (server != "") options = options + " server=" + server;

setBatchMode(true);
run("Clear Results");
open(input);
stackName = File.nameWithoutExtension;
Stack.getDimensions(width, height, channels, slices, timepoints);
interval = Stack.getFrameInterval();
Stack.getUnits(ux, uy, uz, timeUnit, uValue);
if (channels > 1) {
    channel = parseInt(phototoxArg(args, "channel", "1"));
    if (isNaN(channel) || channel < 1 || channel > channels) exit("phototox: channel=" + channel + " but the stack has " + channels + " channels");
    run("Duplicate...", "duplicate channels=" + channel);
    print("phototox: analysing channel " + channel + " of " + channels);
}
frames = nSlices;
r = call("phototox.Phototox.measure", options);
if (startsWith(r, "error:")) exit("phototox: " + substring(r, 7));
saveAs("Tiff", output + stackName + "_sickmap.tif");

t = newArray(frames);
p = newArray(frames);
for (i = 0; i < frames; i++) {
    if (interval > 0) t[i] = i * interval; else t[i] = i + 1;
    p[i] = getResult("MeanSickProbability", nResults - frames + i);
}
if (interval > 0) xLabel = "time (" + timeUnit + ")"; else xLabel = "frame";
Plot.create("phototox: " + stackName, xLabel, "mean P(sick)", t, p);
Plot.setLimits(t[0], maxOf(t[0] + 1, t[frames - 1]), 0, 1);
Plot.show();
saveAs("PNG", output + stackName + "_sickness_over_time.png");
saveAs("Results", output + stackName + "_phototox.csv");
print("phototox: " + frames + " frame(s), x axis " + xLabel + "; first " + d2s(p[0], 3) + ", last " + d2s(p[frames - 1], 3));

// key=value or key=[value with spaces] (ImageJ's own option syntax) -> value of key (or fallback).
function phototoxArg(arguments, key, fallback) {
    return call("ij.Macro.getValue", arguments, key, fallback);
}
