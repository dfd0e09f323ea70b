* delay_line_current_starved: voltage-controlled delay line of four current-starved inverters with a mirror bias generator
.include ../models/ptm45.lib
.param wn=200n wp=400n wsn=400n wsp=800n lmin=45n lbias=90n wbn=400n wbp=800n vctl=0.6 cstage=2f cl=2f
Vdd vdd 0 DC 1.0
Vctrl vctrl 0 DC {vctl}
Vin in 0 PULSE(0 1.0 200p 20p 20p 1980p 4n)
* bias generator: vctrl sets a current that is mirrored into the PMOS (vbp) and NMOS (vbn) starving rails
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
X1 in d1 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X2 d1 d2 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X3 d2 d3 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
X4 d3 d4 vdd vbp vbn csinv wn={wn} wp={wp} wsn={wsn} wsp={wsp} lch={lmin} ls={lbias}
C1 d1 0 {cstage}
C2 d2 0 {cstage}
C3 d3 0 {cstage}
C4 d4 0 {cstage}
* output restoring buffer (two plain inverters)
Mpo1 ob d4 vdd vdd pmos45 w={wp} l={lmin}
Mno1 ob d4 0 0 nmos45 w={wn} l={lmin}
Mpo2 out ob vdd vdd pmos45 w={wp} l={lmin}
Mno2 out ob 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
