# Exact match vs training FLOPs per method (mean over seeds, error bars = std)
# from bench/compare_report.py:
#   gnuplot -e "dat='bench/out/compare/curves.dat'; out='bench/results/compare.png'" bench/plot_compare.gp
# title= and ylab= name another comparison's task and evaluation set, yauto=1
# scales the y axis to the data (data/debian/run.sh report: the WordNet questions).
if (!exists("dat")) dat = 'bench/out/compare/curves.dat'
if (!exists("out")) out = 'bench/results/compare.png'
if (!exists("title")) title = 'Default task (arith): held-out exact match vs training compute'
if (!exists("ylab")) ylab = 'exact match (%)'
set terminal pngcairo size 1000,560 noenhanced
set output out
set title title
set xlabel "training FLOPs (10^12), incl. the SFT stage and the DPO reference cache"
set ylabel ylab
set grid
# yauto: the data's own range (a loss), the key outside the plot so that no
# curve hides behind it; else exact match in % with the key inside
if (exists("yauto")) { set autoscale y; set key outside right top } else { set yrange [0:100]; set key left top }
set datafile commentschars "#"
stats dat using 1 nooutput
plot for [i=0:STATS_blocks-1] dat index i using 1:2:3 with yerrorlines title columnheader(1) lw 2
