"""`cai review`: people label pairs in the browser; their labels become data cai owns.

items.py      what is reviewed (the run's AI pairs, loaded pairs, base vs tuned replies) and who
              labels what next
agreement.py  decisions (majority, adjudication), agreement between annotators, human win rate,
              and the decided pairs the next run's calibration slice takes
app.py        the web page (Flask, plain templates), served on 127.0.0.1 by default
"""
