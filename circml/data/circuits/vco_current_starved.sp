* vco_current_starved: five-stage current-starved ring VCO with vctrl-driven mirror bias and output buffer
.include ../models/ptm45.lib
.param wn=200n wp=400n wsn=400n wsp=800n lmin=45n lbias=90n wbn=400n wbp=800n vctl=0.6 cl=2f
Vdd vdd 0 DC 1.0
Vctrl vctrl 0 DC {vctl}
* bias generator: vctrl sets the stage current, mirrored to both starving rails
Mnc vbp vctrl 0 0 nmos45 w={wbn} l={lbias}
Mpd vbp vbp vdd vdd pmos45 w={wbp} l={lbias}
Mpm vbn vbp vdd vdd pmos45 w={wbp} l={lbias}
Mnd vbn vbn 0 0 nmos45 w={wbn} l={lbias}
.subckt csinv in out vdd vbp vbn wn=200n wp=400n wsn=400n wsp=800n lch=45n ls=90n
Mps ps vbp vdd vdd pmos45 w={wsp} l={ls}
Mp out in ps vdd pmos45 w={wp} l={lch}
Mn out in ns 0 nmos45 w={wn} l={lch}
Mns ns vbn 0 0 nmos45 w={wsn} l={ls}
.ends
X1 r1 r2 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X2 r2 r3 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X3 r3 r4 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X4 r4 r5 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X5 r5 r1 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
* output buffer (plain inverters)
Mpo1 ob r5 vdd vdd pmos45 w={wp} l={lmin}
Mno1 ob r5 0 0 nmos45 w={wn} l={lmin}
Mpo2 out ob vdd vdd pmos45 w={wp} l={lmin}
Mno2 out ob 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
* one-shot current kick that pushes the ring off its metastable operating point
Ikick r1 0 PULSE(0 10u 20p 10p 10p 50p 1)
.end
